"""Rule choose_kappa: the stage's chosen probe, its checkpoint, and the trace of the search."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.atomic import copy_file, write_table
from kpms_flow.runtime import log_to
from kpms_flow.search import read_decision, read_probes, search_outcome, trace_table

log = log_to(snakemake.log[0])  # noqa: F821
inp, out, w = snakemake.input, snakemake.output, snakemake.wildcards  # noqa: F821

outcome = search_outcome(inp.decisions[-1])
_, _, window = read_decision(inp.decisions[-1])
trace = trace_table(read_probes(inp.probes), outcome.chosen_round, outcome.chosen_probe)
chosen = trace[trace["chosen"]].copy()
chosen["status"] = outcome.status
chosen["rounds"] = len(inp.decisions)
chosen["probe_fits"] = len(trace)
# A chosen fit confirmed at the stage's length: the short probe it continued, for the drift.
source = trace[(trace["round"] == chosen["source_round"].iloc[0])
               & (trace["probe"] == chosen["source_probe"].iloc[0])]
chosen["short_probe_median_duration_ms"] = (
    source["median_duration_ms"].iloc[0] if len(source) else chosen["median_duration_ms"].iloc[0]
)
chosen["short_probe_iterations"] = (
    source["iterations"].iloc[0] if len(source) else chosen["iterations"].iloc[0]
)
write_table(out.trace, trace)
write_table(out.chosen, chosen)
# A copy, not a hard link: the link shares the input's inode, and Snakemake's touching of
# this output after the job then made the input newer than chosen.tsv (a "clock skew"
# error that failed the job, seen once in a clean-clone run of the suite).
copy_file(inp.chosen_probe, out.checkpoint)
row = chosen.iloc[0]
if outcome.status == "exhausted":
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
