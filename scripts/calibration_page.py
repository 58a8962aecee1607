"""Rule calibration_page: the self-contained HTML page to label frames for noise calibration."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.plots import use_cpu_for_plots

use_cpu_for_plots()  # keypoint-moseq (sample_error_frames) brings JAX: keep it off the GPU

from kpms_flow.calibration import CalibrationError
from kpms_flow.calibration_page import read_frames, sample_items, write_page
from kpms_flow.keypoints import read_session
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

sessions = [read_session(path) for path in inp.keypoints]
if not sessions:
    raise CalibrationError(
        "calibration_page: no session has a video (the sessions table's 'video' column)"
    )
bodyparts = list(sessions[0].bodyparts)
coordinates, confidences = {}, {}
for kp in sessions:
    missing = [b for b in bodyparts if b not in kp.bodyparts]
    if missing:
        raise CalibrationError(f"{kp.source_path}: lacks bodyparts {missing} of {sessions[0].source_path}")
    order = [list(kp.bodyparts).index(b) for b in bodyparts]
    coordinates[kp.session] = kp.coordinates[:, order, :2]
    confidences[kp.session] = kp.confidences[:, order]
items = sample_items(
    confidences,
    bodyparts,
    p.use_bodyparts or bodyparts,
    seed=p.seed,
    num_samples=p.num_samples,
    conf_pseudocount=p.conf_pseudocount,
)
frames = read_frames(items, p.videos)
tracked = {item: coordinates[item[0]][item[1], bodyparts.index(item[2])] for item in items}
write_page(out[0], items, frames, tracked, title="kpms-flow noise calibration")
log.info("%d frames to label from %d sessions: %s", len(items), len(sessions), out[0])
