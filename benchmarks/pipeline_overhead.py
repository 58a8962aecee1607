"""Whole-pipeline wall time against the bare keypoint-moseq script, for the same fits.

    .venv/bin/python benchmarks/pipeline_overhead.py [--sessions 4] [--frames 10000]
        [--heldout 1] [--arhmm-iters 50] [--full-iters 200] [--apply-iters 100]
        [--repeats 1] [--out benchmarks/results/pipeline_overhead.tsv]

In a scratch directory: kpms_flow.demo's synthetic sessions (--sessions training sessions and
--heldout held-out ones of --frames frames each), the demo's settings with kappa_search
disabled (arhmm.kappa 1e4, full_model.kappa 1e3), latent_dim 3, num_states 25, seed 0. Then:

1. warm-up: the pipeline and benchmarks/bare_kpms.py once each with 2 iterations per stage,
   which fills the JAX persistent compilation cache for these array shapes (the iteration
   counts change no compiled function);
2. per repeat, in alternating order, the pipeline (``snakemake results/summary.tsv`` on 2
   cores, a fresh directory: loading, QA, format_data, PCA, both fits, reindexing, results,
   apply_model for held-out sessions, CSV export, summary; no plots beyond keypoint-moseq's
   own QA and progress plots) and the bare script (one process: the same steps through
   keypoint-moseq's notebook API), both with the warm cache;
3. the labels of the two runs are compared (they must be identical), and the pipeline's time
   is broken down per rule from Snakemake's log and benchmark files.

Prints the ratios pipeline / bare of wall time and of CPU time (user + system of every
process, exact: the kernel's count for waited-for children) and the breakdown; writes the runs to --out and the per-rule
breakdown beside it (``*_rules.tsv``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from snakemake_runs import (
    PROJECT_CACHE,
    ROOT,
    benchmark_rows,
    job_spans,
    load_average,
    run_snakemake,
    synthetic_sessions,
    write_project,
)

KAPPAS = {"arhmm": 1.0e4, "full_model": 1.0e3}


def pipeline_settings(args, iters: dict, truth_dir: Path) -> dict:
    return {
        "latent_dim": 3,
        "seed": 0,
        "kappa_search": {"enabled": False},
        # One fit chain and no noise calibration, as the bare script (the demo has 3 restarts
        # and calibrates from its labelled frames).
        "restarts": {"num_restarts": 1},
        "calibration": {"annotations": []},
        "arhmm": {"kappa": KAPPAS["arhmm"], "num_iters": iters["arhmm"]},
        "full_model": {"kappa": KAPPAS["full_model"], "num_iters": iters["full"]},
        "apply": {"num_iters": iters["apply"]},
        "ground_truth_dir": str(truth_dir),
    }


def run_pipeline(workdir: Path, table: pd.DataFrame, settings: dict):
    config = write_project(workdir, sessions=table, **settings)
    return run_snakemake(workdir, config, "results/summary.tsv")


def run_bare(outdir: Path, table_path: Path, iters: dict) -> tuple[float, float, dict]:
    """Wall time, CPU time (user + system, exact) and the script's own step timings."""
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bare_kpms.py"),
        str(table_path),
        str(outdir),
        "--latent-dim", "3",
        "--seed", "0",
        "--num-states", "25",
        "--arhmm-kappa", str(KAPPAS["arhmm"]),
        "--full-kappa", str(KAPPAS["full_model"]),
        "--arhmm-iters", str(iters["arhmm"]),
        "--full-iters", str(iters["full"]),
        "--apply-iters", str(iters["apply"]),
    ]  # fmt: skip
    env = dict(os.environ, KPMS_FLOW_JAX_CACHE=PROJECT_CACHE)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"bare_kpms.py failed:\n{proc.stderr[-6000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads((outdir / "timings.json").read_text())


def labels_identical(workdir: Path, bare_project: Path, table: pd.DataFrame) -> bool:
    """Every session's syllables, pipeline against bare (training and held-out alike)."""
    with h5py.File(bare_project / "model" / "results.h5") as bare:
        for row in table.itertuples():
            name = Path(row.path).stem
            source = (
                workdir / "results/extract/results.h5"
                if str(row.train) == "true"
                else workdir / f"results/apply/{row.session}.h5"
            )
            with h5py.File(source) as ours:
                if not np.array_equal(ours[row.session]["syllable"][()], bare[name]["syllable"][()]):
                    return False
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--heldout", type=int, default=1)
    parser.add_argument("--arhmm-iters", type=int, default=50)
    parser.add_argument("--full-iters", type=int, default=200)
    parser.add_argument("--apply-iters", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pipeline_overhead.tsv")
    args = parser.parse_args(argv)
    iters = {"arhmm": args.arhmm_iters, "full": args.full_iters, "apply": args.apply_iters}
    warm_iters = {"arhmm": 2, "full": 2, "apply": 2}

    runs, rules = [], []
    with tempfile.TemporaryDirectory(prefix="kpms_flow_overhead_") as scratch:
        scratch = Path(scratch)
        table = synthetic_sessions(scratch, args.sessions + args.heldout, args.frames, args.heldout)
        table_path = scratch / "sessions.tsv"
        table.to_csv(table_path, sep="\t", index=False)
        truth = scratch / "data" / "ground_truth"
        frames = (args.sessions + args.heldout) * args.frames
        print(f"{frames} frames; warming the compile cache (load {load_average()})", flush=True)
        run_pipeline(scratch / "warm-pipeline", table, pipeline_settings(args, warm_iters, truth))
        run_bare(scratch / "warm-bare", table_path, warm_iters)

        for repeat in range(1, args.repeats + 1):
            order = ["pipeline", "bare"] if repeat % 2 else ["bare", "pipeline"]
            walls, cpus = {}, {}
            for kind in order:
                load_before = load_average()
                if kind == "pipeline":
                    workdir = scratch / f"pipeline-{repeat}"
                    wall, log, cpu = run_pipeline(workdir, table, pipeline_settings(args, iters, truth))
                    spans = job_spans(log)
                    bench = benchmark_rows(workdir)
                    per_rule = spans.groupby("rule")["s"].agg(jobs="count", job_s="sum")
                    if len(bench):
                        per_rule = per_rule.join(
                            bench.groupby("rule")[["s", "cpu_time", "max_rss"]].sum().rename(
                                columns={"s": "bench_s", "cpu_time": "bench_cpu_s", "max_rss": "max_rss_mb"}
                            )
                        )
                    per_rule = per_rule.reset_index().assign(repeat=repeat)
                    rules.append(per_rule)
                    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t").iloc[0]
                    detail = {"nmi": round(float(summary.get("nmi", np.nan)), 3)}
                else:
                    bare_dir = scratch / f"bare-{repeat}"
                    wall, cpu, timings = run_bare(bare_dir, table_path, iters)
                    detail = {k: round(v, 1) for k, v in timings.items()}
                walls[kind], cpus[kind] = wall, cpu
                row = {
                    "repeat": repeat,
                    "run": kind,
                    "wall_s": round(wall, 1),
                    "cpu_s": round(cpu, 1),
                    "load_before": load_before,
                    "load_after": load_average(),
                    **detail,
                }
                runs.append(row)
                print(row, flush=True)
            same = labels_identical(scratch / f"pipeline-{repeat}", scratch / f"bare-{repeat}" / "project", table)
            ratio = walls["pipeline"] / walls["bare"]
            cpu_ratio = cpus["pipeline"] / cpus["bare"]
            runs.append(
                {
                    "repeat": repeat,
                    "run": "ratio",
                    "wall_s": round(ratio, 3),
                    "cpu_s": round(cpu_ratio, 3),
                    "labels_identical": same,
                }
            )
            print(
                f"repeat {repeat}: pipeline / bare = {ratio:.3f} (wall), {cpu_ratio:.3f} (CPU); "
                f"labels identical: {same}",
                flush=True,
            )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(runs).to_csv(args.out, sep="\t", index=False)
    breakdown = pd.concat(rules, ignore_index=True)
    breakdown.to_csv(args.out.with_name(args.out.stem + "_rules.tsv"), sep="\t", index=False)
    print(breakdown.to_string(index=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
