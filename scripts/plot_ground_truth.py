"""Rule plot_ground_truth: confusion between fitted syllables and known true states."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.plots import use_cpu_for_plots
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
use_cpu_for_plots()

from pathlib import Path

import pandas as pd

from kpms_flow.atomic import save_figure
from kpms_flow.plots import ground_truth_figure, message_figure

inp, p = snakemake.input, snakemake.params  # noqa: F821
syllables = {Path(f).stem: pd.read_csv(f)["syllable"].to_numpy() for f in inp.syllables}
truth = {Path(f).stem: pd.read_csv(f)["state"].to_numpy() for f in inp.ground_truth}
if truth:
    fig = ground_truth_figure(syllables, truth, p.min_frequency)
else:
    log.warning("no <session>.csv in %s: no confusion matrix", p.ground_truth_dir)
    fig = message_figure(
        "Syllables vs true states", f"no ground-truth file for any session in {p.ground_truth_dir}"
    )
save_figure(snakemake.output[0], fig, dpi=p.dpi, bbox_inches="tight")  # noqa: F821
log.info("confusion of %d sessions with ground truth", len(truth))
