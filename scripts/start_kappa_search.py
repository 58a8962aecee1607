"""Rule start_kappa_search: the first round's kappas of a stage (round 0's decision)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pandas as pd

from kpms_flow.atomic import write_table
from kpms_flow.model import read_training_attrs
from kpms_flow.runtime import log_to
from kpms_flow.search import first_round, stage_bounds, window_in_frames

log = log_to(snakemake.log[0])  # noqa: F821
inp, p = snakemake.input, snakemake.params  # noqa: F821
stage = snakemake.wildcards.stage  # noqa: F821

_, fps, _ = read_training_attrs(inp.data)
window = window_in_frames(p.search["target_duration_ms"], fps)
arhmm_kappa = None
if stage == "full_model":
    arhmm_kappa = float(pd.read_csv(inp.arhmm, sep="\t")["kappa"].iloc[0])
bounds = stage_bounds(stage, p.search, arhmm_kappa)
decision = first_round(bounds, window, p.search["probes_per_round"])
write_table(snakemake.output[0], decision)  # noqa: F821
log.info(
    "%s search: target %.1f-%.1f frames (%s ms at %g fps), log10 kappa %.2f..%.2f, "
    "round 1 kappas %s",
    stage,
    window.low,
    window.high,
    p.search["target_duration_ms"],
    fps,
    *bounds,
    ", ".join(f"{k:.3g}" for k in decision["kappa"]),
)
