"""Rule plot_kappa_search: median duration against kappa, target band, chosen probe."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pandas as pd

from kpms_flow.atomic import save_figure
from kpms_flow.runtime import log_to
from kpms_flow.search import plot_trace

log_to(snakemake.log[0])  # noqa: F821
p = snakemake.params  # noqa: F821
trace = pd.read_csv(snakemake.input[0], sep="\t")  # noqa: F821
fig = plot_trace(trace, p.target_duration_ms, f"{snakemake.wildcards.stage} kappa search")  # noqa: F821
save_figure(snakemake.output[0], fig, dpi=p.dpi)  # noqa: F821
