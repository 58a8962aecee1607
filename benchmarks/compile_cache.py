"""A kappa-probe job with an empty, a warm and no JAX persistent compilation cache.

    .venv/bin/python benchmarks/compile_cache.py [--repeats 2] [--stages arhmm full_model]
        [--out benchmarks/results/compile_cache.tsv]

Every rule that touches JAX calls kpms_flow.runtime.configure_jax, which points JAX's
persistent compilation cache at $KPMS_FLOW_JAX_CACHE (default .snakemake/kpms-flow-jax-cache;
an empty string disables it). This measures what that buys one probe_kappa job: in a scratch
project (the demo's 5 sessions, 4 training, 7,200 frames; latent_dim 3, num_states 25, probes
of kappa_search.num_iters = 25 sweeps, 2 probes per round, 1 round), the search is run once
up to the full-model probes; then probe 0 of round 1 of each stage is rerun alone
(``snakemake --force <its output>``) under three caches, in this order per repeat:

  empty     a new, empty cache folder (the job compiles everything and fills it)
  warm      the folder the "empty" run just filled (a second job, same shapes)
  disabled  KPMS_FLOW_JAX_CACHE="" (compiles everything, writes nothing)

Measured per run: the probe job's wall time (``s`` of Snakemake's benchmark file for the job,
without Snakemake's start-up), and the CPU time (user + system) of the whole
``snakemake --force`` invocation: the probe job plus Snakemake's own ~3 s, counted exactly
by the kernel (the benchmark file's ``cpu_time`` is sampled every 30 s after a job's first
30 s, so it misses the end of longer jobs). The load average is recorded with each run:
the machine is shared, so wall times vary with it; CPU times much less.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from snakemake_runs import ROOT, load_average, run_snakemake, write_project

SETTINGS = {
    "latent_dim": 3,
    "kappa_search": {"enabled": True, "probes_per_round": 2, "max_rounds": 1, "num_iters": 25},
    "arhmm": {"kappa": 1.0e4, "num_iters": 25},
    "full_model": {"kappa": 1.0e3, "num_iters": 25},
}


def probe_target(stage: str) -> str:
    return f"results/search/{stage}/round1/probe0.tsv"


def probe_benchmark(workdir: Path, stage: str) -> dict:
    path = workdir / f"results/benchmarks/probe_kappa/{stage}/round1/probe0.tsv"
    return pd.read_csv(path, sep="\t").iloc[-1].to_dict()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stages", nargs="+", default=["arhmm", "full_model"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/compile_cache.tsv")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="kpms_flow_cache_bench_") as scratch:
        workdir = Path(scratch, "project")
        config = write_project(workdir, **SETTINGS)
        print(f"setting up the search in {workdir} (load {load_average()})", flush=True)
        run_snakemake(workdir, config, *[probe_target(s) for s in args.stages])
        for repeat in range(1, args.repeats + 1):
            for stage in args.stages:
                cache = Path(scratch, f"cache-{stage}-{repeat}")
                for condition, folder in [("empty", cache), ("warm", cache), ("disabled", "")]:
                    load_before = load_average()
                    wall, _, cpu = run_snakemake(
                        workdir, config, probe_target(stage), cache=str(folder), extra=["--force"]
                    )
                    bench = probe_benchmark(workdir, stage)
                    size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
                    row = {
                        "stage": stage,
                        "repeat": repeat,
                        "cache": condition,
                        "probe_s": round(float(bench["s"]), 2),
                        "run_cpu_s": round(cpu, 2),
                        "max_rss_mb": round(float(bench["max_rss"])),
                        "snakemake_wall_s": round(wall, 2),
                        "cache_mb_after": round(size / 1e6, 1) if condition != "disabled" else "",
                        "load_before": load_before,
                        "load_after": load_average(),
                    }
                    rows.append(row)
                    print(row, flush=True)
                shutil.rmtree(cache, ignore_errors=True)

    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False)
    summary = table.groupby(["stage", "cache"])[["probe_s", "run_cpu_s"]].median().unstack()
    print(summary.to_string())
    for stage in args.stages:
        empty = summary.loc[stage, ("probe_s", "empty")]
        warm = summary.loc[stage, ("probe_s", "warm")]
        cpu = summary.loc[stage, ("run_cpu_s", "warm")] / summary.loc[stage, ("run_cpu_s", "empty")]
        print(f"{stage}: warm / empty = {warm / empty:.2f} (median probe wall time), {cpu:.2f} (CPU)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
