"""Rule load_keypoints: one pose file (one animal) -> normalised session file."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821 (the library beside this script)

from kpms_flow.formats import load_session, validate_session
from kpms_flow.keypoints import reorder_bodyparts, write_session
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
p = snakemake.params  # noqa: F821

kp = load_session(
    snakemake.input[0],  # noqa: F821
    p.format,
    session=snakemake.wildcards.session,  # noqa: F821
    animal=p.animal or "",
    fps=p.fps,
    video=p.video or "",
    bodyparts=p.bodyparts,
)
# With use_bodyparts, a session may lack configured bodyparts the model does not use.
kp = reorder_bodyparts(kp, p.bodyparts, required=p.required_bodyparts if p.use_bodyparts else None)
validate_session(
    kp,
    required_bodyparts=p.required_bodyparts,
    min_frames=p.min_frames,
    used_bodyparts=p.use_bodyparts or None,
)
write_session(snakemake.output[0], kp)  # noqa: F821
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
