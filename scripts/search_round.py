"""Checkpoint search_round: after a round, stop (converged / out of rounds) or plan the next."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.atomic import write_table
from kpms_flow.runtime import log_to
from kpms_flow.search import decide, read_decision, read_probes

log = log_to(snakemake.log[0])  # noqa: F821
inp, p, w = snakemake.input, snakemake.params, snakemake.wildcards  # noqa: F821

history = read_probes(inp.probes)
_, bounds, window = read_decision(inp.previous)
limits = tuple(p.search["log10_kappa_limits"])
if w.stage == "full_model":
    # The full model needs a lower kappa than the AR-HMM: never extend above its range.
    limits = (limits[0], bounds[1])
decision = decide(
    history,
    window,
    int(w.round),
    p.search["max_rounds"],
    bounds,
    p.search["probes_per_round"],
    limits,
    stage_iters=int(p.stage_iters),
    confirm_probes=p.search["confirm_probes"],
)
write_table(snakemake.output[0], decision)  # noqa: F821
status = decision["status"].iloc[0]
log.info("%s round %s: %s", w.stage, w.round, status)
log.info("probes so far:\n%s", history.to_string(index=False))
if status == "continue":
    log.info("next probes:\n%s", decision[["probe", "kappa", "iterations", "source_round",
                                             "source_probe"]].to_string(index=False))
