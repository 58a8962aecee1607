"""The GPU check (benchmarks/gpu/check.py): its table logic, and the whole driver on the CPU
at a tiny size under the GPU image simulation (the run a GPU machine would do, minus the GPU).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
import check  # noqa: E402


def test_label_agreement_is_a_partition_comparison(tmp_path):
    a = {"s1": np.array([0, 0, 1, 1, 2]), "s2": np.array([2, 2, 0])}
    renamed = {k: np.array([7, 3, 5])[v] for k, v in a.items()}  # reindexed: same partition
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **renamed)
    same = check.label_agreement(tmp_path / "a.npz", tmp_path / "b.npz")
    assert same == {"recordings": 2, "frames": 8, "agreement": 1.0, "identical": True}
    changed = dict(renamed, s2=np.array([5, 3, 7]))  # one frame of s2 moved to another label
    np.savez(tmp_path / "c.npz", **changed)
    other = check.label_agreement(tmp_path / "a.npz", tmp_path / "c.npz")
    assert not other["identical"] and other["agreement"] == pytest.approx(7 / 8)


@pytest.mark.parametrize(
    "plan_parallel, parallel_status, peak, expected",
    [
        (True, "ok", 50.0, "correct: parallel fitted"),
        (True, "out of memory", 100.0, "WRONG: parallel ran out of memory"),
        (False, "out of memory", 100.0, "correct: parallel ran out of memory"),
        (False, "ok", 50.0, "too cautious: parallel fitted"),
        (True, "error", 10.0, "unknown (parallel: error)"),
    ],
)
def test_plan_verdict(plan_parallel, parallel_status, peak, expected):
    first = {"plan_parallel": plan_parallel, "available_mb": 100.0}
    parallel = {"status": parallel_status, "memory_peak_mb": peak}
    assert check.verdict(first, parallel) == expected
    assert check.verdict(first, None) == "unknown (no parallel run)"


def test_per_iteration_leaves_the_compiling_sweeps_out():
    ends = [10.0, 12.0, 12.5, 13.0, 13.5]  # two slow (compiling) sweeps, then 0.5 s each
    sweeps = [{"end": e, "seconds": s} for e, s in zip(ends, [10, 2, 0.5, 0.5, 0.5])]
    fits = [{"first_sweep": 0, "last_sweep": 5, "end": 14.0}]
    assert check.per_iteration(sweeps, fits) == pytest.approx((14.0 - 12.0) / 3)
    assert check.median_compiled([10, 2, 0.5, 0.7, 0.5]) == 0.5
    assert math.isnan(check.median_compiled([3.0]))


TINY = [
    "--demo-sessions", "2", "--demo-frames", "300", "--probe-iters", "3",
    "--arhmm-iters", "5", "--full-iters", "5", "--sizes", "600", "--size-iters", "3",
    # The demo's model shapes, so that the size run finds its sweep in the compile cache.
    "--size-num-states", "25", "--size-latent-dim", "3", "--parallel-check", "never",
]  # fmt: skip


# A benchmark's whole run (cold compiles of pipeline and bare fits: minutes on 2 cores),
# not a guarantee of the pipeline: opt-in, like the other repeats (KPMS_FLOW_SLOW=1).
@pytest.mark.workflow
@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu" / "check.py"), "--cpu-fallback",
           "--simulate-image", "--threads", "1", "--out", str(out), "--work", str(work), *TINY]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "scripts"))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]

    speed = pd.read_csv(out / "speed.tsv", sep="\t")
    assert speed["stage"].tolist() == ["arhmm", "full_model"]
    numbers = ["pipeline_s_per_iter", "bare_s_per_iter", "ratio_per_iter",
               "pipeline_sweep_median_s", "bare_sweep_median_s", "pipeline_stage_s",
               "bare_stage_s", "ratio_stage"]  # fmt: skip
    assert (speed[numbers] > 0).all().all(), speed.to_string()

    compiled = pd.read_csv(out / "compile.tsv", sep="\t")
    assert list(zip(compiled["stage"], compiled["cache"])) == [
        ("arhmm", "cold"), ("full_model", "cold"), ("arhmm", "warm"), ("full_model", "warm")]
    assert (compiled[["jit_s", "first_sweep_s", "median_sweep_s", "stage_s"]] > 0).all().all()
    cold, warm = compiled[compiled["cache"] == "cold"], compiled[compiled["cache"] == "warm"]
    assert (cold["cache_misses"] > 0).all() and (warm["cache_hits"] > 0).all()
    # The warm AR-HMM finds every computation in the cache the cold probe filled.
    assert warm.iloc[0]["cache_misses"] == 0, compiled.to_string()

    memory = pd.read_csv(out / "memory.tsv", sep="\t")
    assert memory[["frames", "run", "status"]].values.tolist() == [[600, "plan", "ok"]]
    assert (memory[["padded_frames", "estimate_mb", "peak_mb", "limit_mb", "median_sweep_s"]] > 0).all().all()
    assert memory["memory_source"].iloc[0] == "host peak RSS (CPU)"
    # On the CPU the plan keeps keypoint-moseq's CPU default: sequential message passing.
    assert not memory["parallel_message_passing"].iloc[0]
    plan = pd.read_csv(out / "plan.tsv", sep="\t")
    assert plan["frames"].tolist() == [600] and plan["estimate_mb"].iloc[0] > 0

    state = json.loads((out / "check.json").read_text())
    assert state["env"]["keypoint_moseq_import"] == "lean"  # panel refused, as on the GPU machine
    assert state["labels"]["identical"], state["labels"]  # same machine: same syllables
    for name in ("probe", "fits", "bare"):
        assert set(state[name]["refused_imports"]) <= {"panel"}, state[name]["refused_imports"]
    assert set(state["sizes"][0]["refused_imports"]) <= {"panel"}
    md = (out / "gpu_check.md").read_text()
    for section in ("## speed", "## compile", "## memory", "## plan"):
        assert section in md


def test_without_a_gpu_it_stops_after_the_env_step(tmp_path):
    # On a GPU machine whose CUDA plugin failed, the check must not spend its minutes on
    # CPU fits: it says so and exits 2, with the environment recorded.
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu" / "check.py"),
           "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT / "scripts"))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "JAX sees no GPU" in proc.stdout and "--cpu-fallback" in proc.stdout
    state = json.loads((tmp_path / "out" / "check.json").read_text())
    assert state["env"]["platform"] == "cpu" and state["env"]["versions"]["jax"]
    assert not (tmp_path / "work" / "probe").exists()
