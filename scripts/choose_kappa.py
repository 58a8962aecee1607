"""Rule choose_kappa: the stage's chosen probe, its trace, and disk clean-up."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import shutil
from pathlib import Path

from kpms_flow.atomic import write_table
from kpms_flow.runtime import log_to
from kpms_flow.search import read_decision, read_probes, trace_table

log = log_to(snakemake.log[0])  # noqa: F821
inp, out, p, w = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards  # noqa: F821

decision, _, window = read_decision(inp.decisions[-1])
final = decision.iloc[0]
trace = trace_table(read_probes(inp.probes), int(final["chosen_round"]), int(final["chosen_probe"]))
chosen = trace[trace["chosen"]].copy()
chosen["status"] = final["status"]
chosen["rounds"] = len(inp.decisions)
chosen["probe_fits"] = len(trace)
chosen["checkpoint"] = str(
    Path(out.chosen).parent / f"round{int(final['chosen_round'])}" / f"probe{int(final['chosen_probe'])}" / "checkpoint.h5"
)
write_table(out.trace, trace)
write_table(out.chosen, chosen)
row = chosen.iloc[0]
if final["status"] == "exhausted":
    log.warning(
        "%s KAPPA SEARCH DID NOT REACH THE TARGET WINDOW (%.1f-%.1f frames) in %d rounds: "
        "taking the closest probe, kappa %.4g with median duration %.1f frames. Widen the "
        "range or add rounds (config kappa_search).",
        w.stage, window.low, window.high, len(inp.decisions), row["kappa"], row["median_duration_frames"],
    )
else:
    log.info(
        "%s: kappa %.4g gives median duration %.1f frames (%.0f ms) after %d rounds, %d fits",
        w.stage, row["kappa"], row["median_duration_frames"], row["median_duration_ms"],
        len(inp.decisions), len(trace),
    )
if not p.search["keep_probe_checkpoints"]:
    # Checkpoints hold the data and every snapshot: GBs per probe on real datasets.
    for probe in trace[~trace["chosen"]].itertuples():
        probe_dir = Path(out.chosen).parent / f"round{probe.round}" / f"probe{probe.probe}"
        for name in ("checkpoint.h5", "work"):
            target = probe_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
                log.info("removed %s (not chosen)", target)
