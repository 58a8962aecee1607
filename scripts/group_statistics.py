"""Rule group_statistics: keypoint-moseq's stats_df, per-group syllable statistics and
transition matrices over every session (training and applied), grouped by the sessions
table's group column."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.plots import use_cpu_for_plots
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
use_cpu_for_plots()

from kpms_flow.atomic import save_figure, write_table
from kpms_flow.model import read_training_attrs
from kpms_flow.plots import (
    group_stat_figure,
    group_statistics,
    load_results,
    scratch_project,
    transition_figure,
)

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
_, fps, _ = read_training_attrs(inp.data)
results = load_results([inp.results, *inp.applied])
with scratch_project(results, p.groups) as (project, model):
    _, stats_df = group_statistics(project, model, results, fps, p.min_frequency)
    figures = {
        out.frequency: group_stat_figure(stats_df, project, model, "frequency"),
        out.duration: group_stat_figure(stats_df, project, model, "duration"),
        out.transitions: transition_figure(project, model, p.min_frequency),
    }
write_table(out.stats, stats_df)
for path, fig in figures.items():
    save_figure(path, fig, dpi=p.dpi, bbox_inches="tight")
log.info(
    "group statistics: %d sessions in groups %s",
    len(results),
    sorted(stats_df["group"].unique()),
)
