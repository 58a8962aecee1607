"""Rule demo_data: the embedded demo's synthetic sessions and their true states."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from pathlib import Path

from kpms_flow.demo import generate_demo
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
p = snakemake.params  # noqa: F821

out_dir = Path(snakemake.output.pose[0]).parents[1]  # noqa: F821
table = generate_demo(
    out_dir,
    n_sessions=p.n_sessions,
    n_frames=p.n_frames,
    fps=p.fps,
    seed=p.seed,
    n_heldout=p.n_heldout,
    videos=p.videos,
)
log.info("wrote %d demo sessions to %s", len(table), out_dir)
