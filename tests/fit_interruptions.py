"""A longer final fit to interrupt, shared by the local (test_fit_recovery) and the SLURM
(test_slurm_faults) interruption tests, with what they read back: the iterations saved in
its work folder, the iterations a run resumed at, and the final labels."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

from conftest import copy_run

WORK = "results/fits/restart_0/full_model/work"
LOG = "results/logs/fit_full_model/restart_0.log"
TARGET = "results/fits/restart_0/full_model/checkpoint.h5"
FULL_MODEL_ITERS = 16  # sweeps after the AR-HMM: long enough to interrupt in the middle


def longer_fit(reference: Path, workdir: Path, **config_changes) -> Path:
    """A copy of the demo run whose final full-model fit is longer: the AR-HMM and that fit
    rerun, at the config's fixed kappas."""
    copy_run(reference, workdir)
    path = workdir / "config" / "test.yaml"
    config = yaml.safe_load(path.read_text())
    config["full_model"] = dict(config["full_model"], num_iters=FULL_MODEL_ITERS)
    # one restart: the longer fit is the delivered one (and the others need not refit)
    config["restarts"] = {"num_restarts": 1}
    # No search: it confirms its choice at the stage's length, so a longer stage would rerun
    # it and leave the final fit nothing to do (README, "Kappa search").
    config["kappa_search"] = dict(config["kappa_search"], enabled=False)
    config.update(config_changes)
    path.write_text(yaml.safe_dump(config))
    return path


def recorded(workdir: Path) -> list[int]:
    """Iterations whose snapshots the fit has saved completely so far."""
    from kpms_flow.kpms_patches import recorded_iterations

    return recorded_iterations(workdir / WORK)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 600, what: str = ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}:\n{proc.stdout.read()[-5000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def final_labels(workdir: Path) -> tuple[int, np.ndarray]:
    with h5py.File(workdir / TARGET) as f:
        last = max(int(k) for k in f["model_snapshots"])
        return last, f[f"model_snapshots/{last}/states/z"][()]


def resumed_at(log: str) -> list[int]:
    return [int(i) for i in re.findall(rf"resuming {WORK}/checkpoint\.h5 at iteration (\d+)", log)]
