"""Regression check for the XLA hang: a CPU full-model fit of 50,000 frames, a few sweeps.

With jax/jaxlib 0.10.2 such a fit hung inside XLA (all threads idle) after 1-3 sweeps in 5 of
5 runs on this machine's kind; with 0.9.2 it completed (keypoint-moseq-facts.md). This runs
the fit as the workflow does (``configure_jax``, keypoint-moseq's ``fit_model``, the sweep
heartbeat) in a child process under the workflow's watchdog with no restart: a run that
makes no progress for ``--timeout`` seconds is recorded as hung.

    .venv/bin/python benchmarks/cpu_full_model_50k.py                # 1 run, 8 sweeps, minutes
    .venv/bin/python benchmarks/cpu_full_model_50k.py --runs 3 --sweeps 5

Data: the demo generator's 7-keypoint mouse, 5 sessions x 10,000 frames, prepared as the
workflow does (format_data, PCA, latent_dim 4, init_model, 2 AR-HMM sweeps), then
``--sweeps`` full-model sweeps. One row per run goes to
``benchmarks/results/cpu_full_model_50k.tsv``: versions, status, sweeps completed and
sweep times (the first includes JIT compilation).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
RESULTS = ROOT / "benchmarks" / "results" / "cpu_full_model_50k.tsv"


def child(args) -> None:
    """The fit, in the watched process; writes one JSON line per finished sweep."""
    from kpms_flow.runtime import configure_jax

    configure_jax(args.threads)
    import keypoint_moseq as kpms
    from jax_moseq.models import keypoint_slds

    from kpms_flow.config import kpms_config
    from kpms_flow.demo import BODYPARTS, generate_demo
    from kpms_flow.formats import load_session
    from kpms_flow.fitting import init_arhmm
    from kpms_flow.kpms_patches import install_sweep_wrappers
    from kpms_flow.watchdog import beat

    progress = Path(args.progress)
    with tempfile.TemporaryDirectory(prefix="kpms_flow_50k_") as scratch:
        n_frames = args.frames // args.sessions
        table = generate_demo(scratch, n_sessions=args.sessions, n_frames=n_frames, n_heldout=0)
        coordinates, confidences = {}, {}
        for row in table.itertuples():
            kp = load_session(row.path, "deeplabcut", row.session)
            coordinates[kp.session], confidences[kp.session] = kp.coordinates, kp.confidences
    config = {
        "anterior_bodyparts": ["nose"],
        "posterior_bodyparts": ["tailbase"],
        "conf_pseudocount": 1e-3,
        "added_noise_level": 0.1,
        "trans_hypparams": {"num_states": 100, "gamma": 1e3, "alpha": 5.7},
        "ar_hypparams": {"nlags": 3, "S_0_scale": 0.01, "K_0_scale": 10.0},
        "obs_hypparams": {"sigmasq_0": 0.1, "sigmasq_C": 0.1, "nu_sigma": 1e5, "nu_s": 5},
        "cen_hypparams": {"sigmasq_loc": None},
        "error_estimator": {"slope": -0.5, "intercept": 0.25},
    }
    beat()  # data ready
    kcfg = kpms_config(config, BODYPARTS, latent_dim=4)
    data, metadata = kpms.format_data(coordinates, confidences, **kcfg)
    pca = kpms.fit_pca(**data, **kcfg)
    model = init_arhmm(data, pca, kcfg, 1e6, 0, 30.0)
    model, _ = kpms.fit_model(model, data, metadata, num_iters=1, ar_only=True,
                              save_every_n_iters=None, generate_progress_plots=False)
    beat()
    install_sweep_wrappers()
    timed = keypoint_slds.resample_model
    last = [time.time()]

    def record(*a, **k):
        result = timed(*a, **k)  # the heartbeat wrapper waits for the sweep to finish
        now = time.time()
        with open(progress, "a") as handle:
            handle.write(json.dumps({"seconds": now - last[0]}) + "\n")
        last[0] = now
        return result

    keypoint_slds.resample_model = record
    frames = int(data["mask"].sum())
    progress.write_text(json.dumps({"frames": frames}) + "\n")
    last[0] = time.time()
    kpms.fit_model(model, data, metadata, start_iter=1, num_iters=args.sweeps, ar_only=False,
                   save_every_n_iters=None, generate_progress_plots=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--sweeps", type=int, default=8, help="full-model sweeps per run")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600, help="seconds without a sweep = hung")
    parser.add_argument("--output", default=str(RESULTS), help="table to write (default: %(default)s)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    import logging
    from importlib.metadata import version

    import pandas as pd

    from kpms_flow.watchdog import ChildFailed, FitHung, run_watched

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            progress = Path(scratch, "progress.jsonl")
            cmd = [sys.executable, __file__, "--child", "--progress", str(progress),
                   *(f"--{k}={getattr(args, k)}" for k in ("frames", "sessions", "sweeps", "threads"))]
            started, load_before = time.time(), os.getloadavg()[0]
            try:
                run_watched(cmd, timeout_s=args.timeout, max_restarts=0, what=f"run {run + 1}")
                status = "completed"
            except FitHung:
                status = f"hung (no sweep for {args.timeout:g} s)"
            except ChildFailed as error:
                status = f"failed: {error}"
            lines = [json.loads(x) for x in progress.read_text().splitlines()] if progress.exists() else []
        sweeps = [x["seconds"] for x in lines if "seconds" in x]
        frames = next((x["frames"] for x in lines if "frames" in x), None)
        rows.append({
            "run": run + 1,
            "jax": version("jax"),
            "jaxlib": version("jaxlib"),
            "keypoint_moseq": version("keypoint-moseq"),
            "threads": args.threads,
            "frames": frames,
            "status": status,
            "sweeps_done": len(sweeps),
            "sweeps_asked": args.sweeps,
            "first_sweep_s": round(sweeps[0], 1) if sweeps else None,
            "median_later_sweep_s": round(float(pd.Series(sweeps[1:]).median()), 1) if len(sweeps) > 1 else None,
            "wall_s": round(time.time() - started, 1),
            # 1-min load average before / after: the machine is shared.
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
        })
        print(json.dumps(rows[-1]), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.output, sep="\t", index=False)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0 if all(r["status"] == "completed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
