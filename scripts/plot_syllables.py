"""Rule plot_syllables: syllable frequency and duration distributions (keypoint-moseq)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.plots import use_cpu_for_plots
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
use_cpu_for_plots()

from kpms_flow.atomic import save_figure
from kpms_flow.model import read_training_attrs
from kpms_flow.plots import duration_figure, frequency_figure, load_results

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
_, fps, _ = read_training_attrs(inp.data)
results = load_results([inp.results])
figures = {
    out.frequencies: frequency_figure(results, p.min_frequency),
    out.durations: duration_figure(results, fps),
}
for path, fig in figures.items():
    save_figure(path, fig, dpi=p.dpi, bbox_inches="tight")
log.info("syllable figures of %d sessions (fps %s)", len(results), fps)
