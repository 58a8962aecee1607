"""keypoint-moseq's import in a fresh process: whole, or with its notebook-statistics module
on first use (kpms_flow.kpms_patches, patch 5).

    .venv/bin/python benchmarks/kpms_import.py [--repeats 7]

Every job that calls keypoint-moseq (loading, QA, PCA, fits, apply, plots) is a new
process, so it pays keypoint-moseq's import. Per repeat, two fresh interpreters, in
alternating order:

  whole      ``import keypoint_moseq`` (what a bare script does, and kpms-flow did)
  deferred   ``import kpms_flow`` first, then ``import keypoint_moseq``: its ``analysis``
             (and panel, bokeh...) is left until one of its names is used

Printed: wall and CPU (user + system, the interpreter's start included) of each
interpreter, medians over the repeats, their ratio, and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CODE = {
    "whole": "import keypoint_moseq",
    "deferred": "import kpms_flow, keypoint_moseq, sys; assert 'panel' not in sys.modules",
}


def run(mode: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh interpreter importing keypoint-moseq as ``mode``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "scripts"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CODE[mode]], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    run("whole")  # not counted: the first import after a change reads cold files
    results = {mode: [] for mode in CODE}
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for repeat in range(args.repeats):
        for mode in CODE if repeat % 2 == 0 else reversed(list(CODE)):
            results[mode].append(run(mode))
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    medians = {}
    for mode, rows in results.items():
        medians[mode] = [statistics.median(row[i] for row in rows) for i in (0, 1)]
        print(f"{mode:9s} wall {medians[mode][0]:.2f} s, CPU {medians[mode][1]:.2f} s (median of {len(rows)})")
    wall, cpu = (medians["deferred"][i] / medians["whole"][i] for i in (0, 1))
    saved = medians["whole"][1] - medians["deferred"][1]
    print(f"deferred / whole: wall {wall:.2f}, CPU {cpu:.2f} ({saved:.2f} CPU-s less per process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
