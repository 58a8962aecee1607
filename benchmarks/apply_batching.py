"""Applying the frozen model: one process per session (apply_model's jobs) against several
sessions in one process (a batched apply job), on a finished run's model and sessions.

    .venv/bin/python benchmarks/apply_batching.py --run RUN_DIR [--sessions N] [--num-iters K]
        [--config CONFIG] [--out benchmarks/results/apply_batching.tsv]

RUN_DIR is a finished kpms-flow run (its results/model/checkpoint.h5, results/data/data.h5
and results/sessions/<s>/clean.h5), e.g. a test-config demo run. Each mode runs the same
code as rule apply_model (kpms_flow.runtime.configure_jax with one thread and the run's
compile cache, kpms_flow.model.apply_to_session per session), in fresh Python processes:

  alone    one process per session, one after another (what N apply_model jobs cost
           without Snakemake's own start-up)
  batched  one process applying the N sessions in turn (each still with its own
           apply_to_session call: its own format_data, its own seed, its own file)

A warm-up process fills the compile cache first, so both modes read a warm cache. Reported:
the wall time of each mode, the ratio alone / batched, and whether each session's syllables
are identical in the two modes (labels must not depend on which sessions share a job).
One run; the machine is shared, so the ratio is the figure, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(run: Path, config_path: Path, sessions: list[str], num_iters: int, out_dir: Path) -> None:
    """Apply the run's model to ``sessions`` in this process, as rule apply_model does."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from kpms_flow.runtime import configure_jax

    configure_jax(1, os.environ.get("KPMS_FLOW_JAX_CACHE"))
    import yaml

    from kpms_flow.config import kpms_config, load_workflow_config
    from kpms_flow.keypoints import read_session
    from kpms_flow.model import apply_to_session, read_training_attrs

    config = yaml.safe_load(config_path.read_text())
    config["sessions"] = str(run / config["sessions"])
    config, _ = load_workflow_config(config, ROOT / "workflow" / "schemas")
    bodyparts, _, _ = read_training_attrs(run / "results/data/data.h5")
    kcfg = kpms_config(config, bodyparts)
    for session in sessions:
        kp = read_session(run / "results/sessions" / session / "clean.h5")
        apply_to_session(run / "results/model/checkpoint.h5", kp, kcfg, num_iters, out_dir / f"{session}.h5")


def timed_worker(args, sessions: list[str], out_dir: Path) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, __file__, "--worker", "--run", str(args.run), "--config", str(args.config),
        "--num-iters", str(args.num_iters), "--out-dir", str(out_dir), "--names", *sessions,
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def syllables(path: Path, session: str):
    import h5py

    with h5py.File(path, "r") as f:
        return f[session]["syllable"][()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run's working directory")
    parser.add_argument("--config", type=Path, help="its config (default RUN/config/test.yaml)")
    parser.add_argument("--sessions", type=int, default=4, help="sessions to apply (default 4)")
    parser.add_argument("--num-iters", type=int, default=3, help="apply sweeps (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/apply_batching.tsv")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--names", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.run = args.run.resolve()
    args.config = (args.config or args.run / "config/test.yaml").resolve()
    if args.worker:
        worker(args.run, args.config, args.names, args.num_iters, args.out_dir)
        return
    os.environ.setdefault("KPMS_FLOW_JAX_CACHE", str(args.run / ".snakemake/kpms-flow-jax-cache"))
    names = sorted(p.name for p in (args.run / "results/sessions").iterdir() if (p / "clean.h5").exists())
    names = names[: args.sessions]
    with tempfile.TemporaryDirectory(prefix="apply_batching_") as scratch:
        scratch = Path(scratch)
        warmup = timed_worker(args, names[:1], scratch / "warmup")
        alone = [timed_worker(args, [s], scratch / "alone") for s in names]
        batched = timed_worker(args, names, scratch / "batched")
        same = {
            s: bool((syllables(scratch / "alone" / f"{s}.h5", s) == syllables(scratch / "batched" / f"{s}.h5", s)).all())
            for s in names
        }
    row = {
        "sessions": len(names),
        "num_iters": args.num_iters,
        "warmup_s": round(warmup, 1),
        "alone_s_each": [round(t, 1) for t in alone],
        "alone_s": round(sum(alone), 1),
        "batched_s": round(batched, 1),
        "ratio_alone_over_batched": round(sum(alone) / batched, 2),
        "same_syllables": same,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(row, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    pd.DataFrame([row]).to_csv(args.out, sep="\t", index=False)


if __name__ == "__main__":
    main()
