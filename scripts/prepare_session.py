"""Rule prepare_session: one pose file (one animal) -> normalised session file, then
keypoint-moseq's medoid-distance outlier removal -> cleaned session file and QA row."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821 (the library beside this script)

import pandas as pd

from kpms_flow.atomic import write_table
from kpms_flow.formats import load_model_session
from kpms_flow.keypoints import read_session, write_session
from kpms_flow.qa import outlier_qa
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
p, out = snakemake.params, snakemake.output  # noqa: F821

kp = load_model_session(
    snakemake.input[0],  # noqa: F821
    session=snakemake.wildcards.session,  # noqa: F821
    **p.source,  # format, animal, fps, video (common.smk: session_pose_source)
    bodyparts=p.bodyparts,
    use_bodyparts=p.use_bodyparts,
    required_bodyparts=p.required_bodyparts,
    min_frames=p.min_frames,
)
write_session(out.keypoints, kp)
log.info(
    "%s: %d frames, %d bodyparts %s, %dD, fps %s (%s), sha256 %s",
    kp.source_path,
    kp.n_frames,
    len(kp.bodyparts),
    kp.bodyparts,
    kp.n_dims,
    kp.fps,
    kp.fps_source or "unknown",
    kp.source_sha256[:12],
)

# QA on the session as written (float64, fps NaN when unknown), as every later rule reads it.
result = outlier_qa(
    read_session(out.keypoints), p.outlier_scale_factor, plot_path=out.plot, use_bodyparts=p.use_bodyparts
)
write_session(
    out.clean,
    result.clean,
    extra={"outlier_mask": result.outlier_mask, "missing_mask": result.missing_mask},
)
write_table(out.table, pd.DataFrame([result.row]))
log.info("QA %s", result.row)
