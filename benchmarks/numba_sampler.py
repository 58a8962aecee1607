"""jax-moseq's numba table-count sampler in a fresh process: compiled, or loaded from
numba's cache (kpms_flow.kpms_patches, patch 4).

    .venv/bin/python benchmarks/numba_sampler.py [--repeats 5]

Each fitting or apply job is a new process, and jax-moseq's ``@njit``
``_sample_loyal_crf_table_counts`` has no ``cache=True``: without the patch every job
compiles it at its first sweep. Per repeat, three fresh interpreters run the sampler once
on a 25-state transition-count matrix (after importing jax_moseq, not timed):

  unpatched   numba compiles it (as every job did before the patch)
  first       patched, empty NUMBA_CACHE_DIR: compiles and writes the cache
  cached      patched, the cache the "first" process wrote

Printed: the first call's wall time and the process's CPU time after the import, medians
over the repeats, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN = """
import json, sys, time
import numpy as np
from jax_moseq.utils import transitions
if sys.argv[1] == "patched":
    sys.path.insert(0, sys.argv[2])
    from kpms_flow.kpms_patches import cache_table_count_sampler
    assert cache_table_count_sampler()
counts = np.random.default_rng(0).integers(0, 50, (25, 25)).astype(np.int32)
concentrations = np.random.default_rng(1).uniform(0.1, 2.0, 25)
cpu, wall = time.process_time(), time.perf_counter()
transitions._sample_loyal_crf_table_counts(np.random.default_rng(2), counts, concentrations, 1e3)
print(json.dumps({"call_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}))
"""


def run(mode: str, cache: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", RUN, mode, str(ROOT / "scripts")], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    results = {"unpatched": [], "first": [], "cached": []}
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as scratch:
            results["unpatched"].append(run("unpatched", Path(scratch, "unused")))
            results["first"].append(run("patched", Path(scratch, "cache")))
            results["cached"].append(run("patched", Path(scratch, "cache")))
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for mode, rows in results.items():
        call = statistics.median(r["call_s"] for r in rows)
        cpu = statistics.median(r["cpu_s"] for r in rows)
        print(f"{mode:10s} first call {call:.3f} s, CPU {cpu:.3f} s (median of {len(rows)})")
    saved = statistics.median(r["call_s"] for r in results["unpatched"]) - statistics.median(
        r["call_s"] for r in results["cached"]
    )
    print(f"saved per job: {saved:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
