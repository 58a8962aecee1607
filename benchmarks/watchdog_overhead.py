"""What the fit watchdog adds to a job's wall time.

    .venv/bin/python benchmarks/watchdog_overhead.py [--repeats 7] [--tree DIR ...]

A stand-in for a fitting rule script: Snakemake's preamble's imports, the fitting rules'
first lines (``supervise``), then 10 "sweeps" (``beat()`` and a 0.1-s sleep). It runs with
the watchdog on (``timeout_s`` 600: the script's process becomes the parent of a watched
child that does the work) and off (``timeout_s`` 0: all in one process), alternately,
``--repeats`` times each. On minus off (medians) is what the watchdog costs a job: starting
the child (a fork; or a second interpreter and its imports when the script is started
again) and noticing that it ended (at once; or up to a poll interval).

``--tree`` takes one or more checkouts whose kpms_flow to use, measured in the same run
(e.g. the 5-s polling watchdog: ``git archive dc00c8f | tar -x -C DIR``). Prints the table
with the load average and writes benchmarks/results/watchdog_overhead.tsv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Snakemake's preamble's imports, then a fitting rule script's first lines.
JOB = """\
import sys, time
import pickle; from snakemake.logging import logger; from snakemake.iocontainers import Snakemake
sys.path.insert(0, {scripts!r})
from kpms_flow.runtime import configure_jax
from kpms_flow.watchdog import beat, supervise

log = supervise({log!r}, {{"timeout_s": {timeout}, "max_restarts": 0}}, what="job")
for _ in range({sweeps}):
    beat()  # the signature both watchdogs share
    time.sleep(0.1)
"""


def run_job(script: Path) -> float:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script)], check=True, env=env)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, nargs="+", default=[ROOT], help="checkouts whose kpms_flow to use")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweeps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "watchdog_overhead.tsv")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kpms_flow_watchdog_bench_") as scratch:
        for tree in args.tree:
            load_before = os.getloadavg()[0]
            scripts, times = {}, {"off": [], "on": []}
            for mode, timeout in (("off", 0), ("on", 600)):
                scripts[mode] = Path(scratch, f"job_{mode}.py")
                scripts[mode].write_text(JOB.format(scripts=str(tree.resolve() / "scripts"),
                                                    log=str(Path(scratch, f"{mode}.log")),
                                                    timeout=timeout, sweeps=args.sweeps))
            for _ in range(args.repeats):
                for mode in ("off", "on"):
                    times[mode].append(run_job(scripts[mode]))
            off, on = statistics.median(times["off"]), statistics.median(times["on"])
            rows.append({
                "tree": str(tree.resolve()),
                "job_watchdog_off_s": off,
                "job_watchdog_on_s": on,
                "extra_s": on - off,
                "extra_of_minima_s": min(times["on"]) - min(times["off"]),
                "on_all_s": " ".join(f"{t:.2f}" for t in times["on"]),
                "off_all_s": " ".join(f"{t:.2f}" for t in times["off"]),
                "sweeps": args.sweeps,
                "repeats": args.repeats,
                "load_before": round(load_before, 2),
                "load_after": round(os.getloadavg()[0], 2),
            })

    import pandas as pd

    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False, float_format="%.3f")
    print(table.T.to_string(header=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
