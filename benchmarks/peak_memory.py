"""Peak memory (max RSS) of the loading and fitting rules against the number of frames.

    .venv/bin/python benchmarks/peak_memory.py [--frames 3000 15000 45000] [--sessions 2]
        [--heldout 1] [--out benchmarks/results/peak_memory.tsv]

For each size, a scratch project with kpms_flow.demo's synthetic sessions (--sessions
training sessions and --heldout held-out ones, --frames frames each; 7 keypoints, 2-D),
kappa_search disabled, latent_dim 3, num_states 25 and 3 iterations per stage (memory does
not grow with iterations: checkpoints are written to disk), run to results/summary.tsv.

Two measurements of each job's peak resident memory:

- **sampled**: this script polls every job's process tree (psutil, every 0.2 s) and keeps
  the largest sum of RSS over the job's processes. Covers every rule, also prepare_session,
  which has no ``benchmark:`` file.
- **snakemake**: ``max_rss`` of the rule's ``benchmark:`` file. Snakemake samples once a
  second for a job's first 30 s and every 30 s after that (snakemake/benchmark.py), so for
  longer jobs it can miss the peak.

Prints and writes one row per rule and size (the largest job of the rule).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

from snakemake_runs import (
    PROJECT_CACHE,
    ROOT,
    SNAKEMAKE,
    benchmark_rows,
    load_average,
    synthetic_sessions,
    write_project,
)

SCRIPT = re.compile(r"\.snakemake/scripts/tmp[^/]*?\.(\w+)\.py$")
RULES = [
    "prepare_session",
    "prepare_training_data",
    "fit_arhmm",
    "fit_full_model",
    "reindex_syllables",
    "extract_results",
    "apply_model",
    "export_session",
]


class JobMemory(threading.Thread):
    """Peak RSS per job script process (and its children) under a Snakemake process.

    A fitting job is two processes (the rule's script and the child it watches, see
    kpms_flow.watchdog); the parent's sum over its tree is the job's memory.
    """

    def __init__(self, root_pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root = psutil.Process(root_pid)
        self.interval = interval
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (rule, bytes)
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                procs = self.root.children(recursive=True)
            except psutil.Error:
                break
            for proc in procs:
                try:
                    match = next(
                        (m for m in map(SCRIPT.search, proc.cmdline()) if m is not None), None
                    )
                    if match is None:
                        continue
                    rss = proc.memory_info().rss
                    for child in proc.children(recursive=True):
                        rss += child.memory_info().rss
                except psutil.Error:
                    continue
                rule = match.group(1)
                old = self.peaks.get(proc.pid, (rule, 0))[1]
                self.peaks[proc.pid] = (rule, max(old, rss))
            time.sleep(self.interval)


def measure(workdir: Path, config: Path) -> pd.DataFrame:
    cmd = [SNAKEMAKE, "results/summary.tsv", "-s", str(ROOT / "Snakefile"), "-d", str(workdir)]
    cmd += ["--cores", "2", "--resources", "gpu=2", "--configfile", str(config)]
    env = dict(os.environ, KPMS_FLOW_JAX_CACHE=PROJECT_CACHE)
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = JobMemory(proc.pid)
    sampler.start()
    _, err = proc.communicate()
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake failed in {workdir}:\n{err[-6000:]}")
    sampled = pd.DataFrame(
        [{"rule": rule, "sampled_mb": rss / 2**20} for rule, rss in sampler.peaks.values()]
    )
    sampled = sampled.groupby("rule")["sampled_mb"].max().to_frame("sampled_max_rss_mb")
    bench = benchmark_rows(workdir)
    if len(bench):
        snakemake_max = bench.groupby("rule")["max_rss"].max().rename("snakemake_max_rss_mb")
        sampled = sampled.join(snakemake_max, how="outer")
    return sampled.reset_index()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[3000, 15000, 45000])
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--heldout", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/peak_memory.tsv")
    args = parser.parse_args(argv)

    tables = []
    with tempfile.TemporaryDirectory(prefix="kpms_flow_memory_") as scratch:
        for frames in args.frames:
            workdir = Path(scratch, f"frames-{frames}")
            table = synthetic_sessions(workdir, args.sessions + args.heldout, frames, args.heldout)
            config = write_project(
                workdir,
                sessions=table,
                latent_dim=3,
                kappa_search={"enabled": False},
                arhmm={"kappa": 1.0e4, "num_iters": 3},
                full_model={"kappa": 1.0e3, "num_iters": 3},
                apply={"num_iters": 3},
                save_every_n_iters=2,
                ground_truth_dir=None,
            )
            load_before = load_average()
            start = time.perf_counter()
            result = measure(workdir, config)
            result.insert(0, "frames_per_session", frames)
            result.insert(1, "training_frames", frames * args.sessions)
            result["wall_s"] = round(time.perf_counter() - start, 1)
            result["load_before"], result["load_after"] = load_before, load_average()
            tables.append(result)
            print(result.to_string(index=False), flush=True)

    table = pd.concat(tables, ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False, float_format="%.0f")
    wide = table.pivot(index="rule", columns="training_frames", values="sampled_max_rss_mb")
    order = [r for r in RULES if r in wide.index] + [r for r in wide.index if r not in RULES]
    print("\nsampled max RSS (MB) by training frames:")
    print(wide.loc[order].round(0).to_string())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
