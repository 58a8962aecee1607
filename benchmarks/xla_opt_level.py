"""The test suite's fits compiled by XLA at its default LLVM optimisation and at -O0.

    .venv/bin/python benchmarks/xla_opt_level.py [--repeats 2]
        [--out benchmarks/results/xla_opt_level.tsv]

tests/conftest.py sets ``XLA_FLAGS=--xla_backend_optimization_level=0`` for the whole suite
(test_equivalence excepted): its fits run a few sweeps, so compiling them is most of their
CPU time. This measures what that buys and what it changes. In a scratch project with
config/test.yaml's settings (the demo's 5 sessions; kappa search off, one restart,
keypoint-moseq's default noise model), the data and PCA are made once; then, in this order
per repeat, for each build (``default``: XLA_FLAGS as given to this script; ``O0``: with
the flag), the AR-HMM fit, the full-model fit, the held-out session's apply job and the
light jobs between them (reindexing) are rerun (``snakemake --forcerun``) with a new, empty
compile cache, as in a fresh clone.

Measured per run: the CPU time (user + system, counted by the kernel) and the wall time of
the whole invocation, each job's wall time (its benchmark file), and whether its labels
(the full model's last ``states/z``, the applied session's ``syllable``) equal the default
build's of the same repeat.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml

from snakemake_runs import ROOT, load_average, run_snakemake, write_project

O0 = "--xla_backend_optimization_level=0"
FULL_MODEL = "results/fits/restart_0/full_model/checkpoint.h5"
APPLIED = "results/apply/demo_05.h5"
RULES = ["fit_arhmm", "fit_full_model", "apply_model"]


def test_settings() -> dict:
    """config/test.yaml without its sessions table (write_project gives the demo's), with
    one fit chain and nothing before the fits that a rerun would need."""
    settings = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    settings.pop("sessions")
    settings.update(
        kappa_search={"enabled": False}, restarts={"num_restarts": 1}, calibration={"annotations": []}
    )
    return settings


def labels(workdir: Path) -> dict[str, np.ndarray]:
    with h5py.File(workdir / FULL_MODEL) as f:
        last = max(f["model_snapshots"], key=int)
        fitted = f[f"model_snapshots/{last}/states/z"][()]
    with h5py.File(workdir / APPLIED) as f:
        applied = np.concatenate([f[key]["syllable"][()] for key in sorted(f)])
    return {"full model z": fitted, "applied syllables": applied}


def job_seconds(workdir: Path) -> dict[str, float]:
    paths = {
        "fit_arhmm": "fit_arhmm/restart_0.tsv",
        "fit_full_model": "fit_full_model/restart_0.tsv",
        "apply_model": "apply_model/demo_05.tsv",
    }
    bench = workdir / "results" / "benchmarks"
    return {f"{rule}_s": round(float(pd.read_csv(bench / p, sep="\t").iloc[-1]["s"]), 2) for rule, p in paths.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/xla_opt_level.tsv")
    args = parser.parse_args(argv)
    given = os.environ.get("XLA_FLAGS", "")
    builds = {"default": given, "O0": f"{given} {O0}".strip()}

    rows = []
    with tempfile.TemporaryDirectory(prefix="kpms_flow_xla_bench_") as scratch:
        workdir = Path(scratch, "project")
        config = write_project(workdir, **test_settings())
        print(f"making the data in {workdir} (load {load_average()})", flush=True)
        run_snakemake(workdir, config, FULL_MODEL, APPLIED, cache=str(Path(scratch, "setup-cache")))
        for repeat in range(1, args.repeats + 1):
            reference = None
            for build, flags in builds.items():
                cache = Path(scratch, f"cache-{build}-{repeat}")
                env = dict(os.environ, XLA_FLAGS=flags)
                load_before = load_average()
                wall, _, cpu = run_snakemake(
                    workdir, config, FULL_MODEL, APPLIED, cache=str(cache), env=env,
                    extra=["--forcerun", *RULES],
                )  # fmt: skip
                result = labels(workdir)
                reference = reference or result
                row = {
                    "repeat": repeat,
                    "build": build,
                    "run_cpu_s": round(cpu, 2),
                    "run_wall_s": round(wall, 2),
                    **job_seconds(workdir),
                    **{
                        f"{name} equal default": bool(np.array_equal(value, reference[name]))
                        for name, value in result.items()
                    },
                    "load_before": load_before,
                    "load_after": load_average(),
                }
                rows.append(row)
                print(row, flush=True)
                shutil.rmtree(cache, ignore_errors=True)

    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False)
    summary = table.groupby("build")[["run_cpu_s", "run_wall_s", *[f"{r}_s" for r in RULES]]].median()
    print(summary.to_string())
    ratio = summary.loc["O0", "run_cpu_s"] / summary.loc["default", "run_cpu_s"]
    print(f"O0 / default: {ratio:.2f} (median CPU of the rerun chain and Snakemake)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
