"""Rule plot_progress: keypoint-moseq's fitting-progress figure for a stage's final fit."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.plots import use_cpu_for_plots
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
use_cpu_for_plots()

from kpms_flow.atomic import save_figure
from kpms_flow.model import read_training_attrs
from kpms_flow.plots import progress_figure

inp, p = snakemake.input, snakemake.params  # noqa: F821
stage = snakemake.wildcards.stage  # noqa: F821
_, fps, _ = read_training_attrs(inp.data)
fig = progress_figure(inp.checkpoint, fps, stage)
save_figure(snakemake.output[0], fig, dpi=p.dpi, bbox_inches="tight")  # noqa: F821
log.info("%s: progress figure of %s", stage, inp.checkpoint)
