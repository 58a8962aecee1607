"""Fits that are killed, hang, or produce NaNs (issue 7), with real processes and real
keypoint-moseq.

* SIGKILL of the whole Snakemake process group during the final full-model fit: the next
  run resumes from the last saved iteration and ends with the uninterrupted fit's labels;
* a fit that stops making progress (frozen with SIGSTOP, as a hung XLA looks from outside):
  the watchdog kills it, says so, restarts it, and it resumes to the same labels;
* a kill while keypoint-moseq writes a snapshot into its checkpoint: the half-written
  snapshot is never resumed from;
* NaNs (real ones, from absurd hyperparameters): retried with a larger jitter, logged, then
  a clear failure.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import ROOT, SNAKEMAKE, snakemake, tiny_keypoints
from fit_interruptions import LOG, TARGET, WORK, final_labels, longer_fit, recorded, resumed_at, wait_for


def start(workdir: Path, config: Path) -> subprocess.Popen:
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--resources", "gpu=2", "--configfile", str(config), "--", TARGET]
    env = dict(os.environ, KPMS_FLOW_JAX_CACHE=str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.workflow
def test_hung_then_killed_fit_resumes_and_ends_as_if_uninterrupted(demo_reference, uninterrupted, tmp_path):
    """One fit, two interruptions: frozen (the watchdog restarts it), then SIGKILLed with
    Snakemake (the next run resumes it). Both resume from the last saved iteration."""
    timeout_s = 45
    config = longer_fit(demo_reference, tmp_path, watchdog={"timeout_s": timeout_s, "max_restarts": 2})
    last_iteration, reference_labels = uninterrupted
    proc = start(tmp_path, config)
    try:
        # 1. A hang: freeze the fitting process once it saved a few snapshots (it starts at
        #    the AR-HMM's last, iteration 3). SIGSTOP stops every thread, as a hung XLA.
        wait_for(lambda: any(i > 5 for i in recorded(tmp_path)), proc, what="a save")
        child = int(re.search(r"fit_full_model: process (\d+) started", (tmp_path / LOG).read_text()).group(1))
        saved_before_hang = max(recorded(tmp_path))
        os.kill(child, signal.SIGSTOP)
        # 2. A kill: once the restarted fit saved a snapshot beyond those, kill everything.
        wait_for(lambda: max(recorded(tmp_path)) > saved_before_hang + 2, proc, timeout=timeout_s + 600,
                 what="a save after the restart")
        log = (tmp_path / LOG).read_text()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert re.search(rf"fit_full_model: no progress for \d+ s after \d+ sweeps: process {child} killed "
                     r"\(SIGKILL\); starting it again, a fit resumes from its last saved iteration", log), log[-3000:]
    assert "(attempt 2 of 3" in log
    assert resumed_at(log)[-1] - 1 >= saved_before_hang
    saved_before_kill = max(recorded(tmp_path))
    assert saved_before_kill < last_iteration, "the fit finished before the kill"
    assert not (tmp_path / TARGET).exists()

    snakemake(tmp_path, "--unlock", config=config)
    snakemake(tmp_path, "--resources", "gpu=2", "--", TARGET, config=config)
    log = (tmp_path / LOG).read_text()
    # From the last snapshot saved before the kill (or one saved while being killed).
    assert resumed_at(log)[-1] - 1 >= saved_before_kill
    assert not re.search(r"starting \S+checkpoint\.h5 at iteration", log)
    iteration, labels = final_labels(tmp_path)
    assert iteration == last_iteration
    np.testing.assert_array_equal(labels, reference_labels)
    assert not (tmp_path / WORK).exists()


# ---------------------------------------------------------------- the watchdog on its own
WATCHED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {scripts!r})
    from kpms_flow.watchdog import beat, supervise

    log = supervise({log!r}, {{"timeout_s": 2, "max_restarts": {restarts}}}, what="job")
    marker = Path({marker!r})
    for sweep in range(3):
        beat()
        time.sleep(0.2)
    if {behaviour!r} == "hang once" and not marker.exists():
        marker.write_text("hung")
        time.sleep(3600)  # a hang: no more sweeps
    if {behaviour!r} == "hang":
        time.sleep(3600)
    if {behaviour!r} == "fail":
        raise ValueError("data.h5: something the child found wrong")
    log.info("job done")
    """
)


def run_watched_script(tmp_path: Path, behaviour: str, restarts: int = 1):
    log = tmp_path / f"{behaviour}.log"
    script = tmp_path / f"{behaviour.replace(' ', '_')}.py"
    script.write_text(WATCHED.format(scripts=str(ROOT / "scripts"), log=str(log), restarts=restarts,
                                     marker=str(tmp_path / "marker"), behaviour=behaviour))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    return proc, log.read_text()


def test_watchdog_restarts_a_hung_job_once(tmp_path):
    proc, log = run_watched_script(tmp_path, "hang once")
    assert proc.returncode == 0, proc.stderr
    pids = re.findall(r"job: process (\d+) started \(attempt (\d) of 2", log)
    assert [a for _, a in pids] == ["1", "2"]
    assert re.search(rf"no progress for \d+ s after 0 sweeps: process {pids[0][0]} killed \(SIGKILL\); starting it again", log)
    assert log.count("job done") == 1


def test_watchdog_gives_up_after_max_restarts(tmp_path):
    proc, log = run_watched_script(tmp_path, "hang", restarts=1)
    assert proc.returncode == 1
    assert log.count("killed (SIGKILL)") == 2
    assert re.search(r"ERROR: job made no progress for 2 s in 2 attempts and was killed each time "
                     r"\(config key 'watchdog'\)", proc.stderr)


def test_watchdog_reports_the_childs_own_error(tmp_path):
    proc, log = run_watched_script(tmp_path, "fail")
    assert proc.returncode == 1
    assert "ERROR: data.h5: something the child found wrong" in proc.stderr
    assert "Traceback" in log and "attempt 2" not in log  # an error is not retried


def python_child(code: str) -> list[str]:
    """A child command that can import kpms_flow (for beat())."""
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r})\n{code}"]


def test_watchdog_returns_when_its_child_does():
    """No polling delay: run_watched ends within 0.5 s of its child (the old 5-s poll, at
    this timeout a 3-s poll, made every job end on the next multiple of it). Minimum of 3
    interleaved runs each, so a burst of load on the shared machine cannot fail it."""
    from kpms_flow.watchdog import run_watched

    child = python_child("import time; time.sleep(0.2)")
    bare, watched = [], []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(child, check=True)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert run_watched(child, timeout_s=60, what="trivial") == 0
        watched.append(time.perf_counter() - start)
    assert min(bare) >= 0.2
    assert min(watched) - min(bare) < 0.5, (bare, watched)


SUPERVISED = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {scripts!r})
    from kpms_flow.watchdog import beat, supervise

    log = supervise({log!r}, {{"timeout_s": {timeout}, "max_restarts": 0}}, what="job")
    Path({pid_file!r}).write_text(str(os.getpid()))
    for sweep in range(2):
        beat(sweep=True)
        time.sleep({sweep_s})
    """
)


def supervised_script(tmp_path: Path, name: str, timeout: float, sweep_s: float) -> Path:
    script = tmp_path / f"{name}.py"
    script.write_text(SUPERVISED.format(scripts=str(ROOT / "scripts"), log=str(tmp_path / f"{name}.log"),
                                        timeout=timeout, pid_file=str(tmp_path / f"{name}.pid"), sweep_s=sweep_s))
    return script


def test_supervised_script_takes_as_long_as_unsupervised(tmp_path):
    """A rule script under the watchdog (a forked child does the work) ends within 0.5 s of
    the same script with the watchdog off (minimum of 3 interleaved runs each)."""
    times = {}
    for name, timeout in (("off", 0), ("on", 600)):
        times[name] = [supervised_script(tmp_path, name, timeout, 0.1), []]
    for _ in range(3):
        for name, (script, runs) in times.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, str(script)], check=True, timeout=120)
            runs.append(time.perf_counter() - start)
    assert "job: process" in (tmp_path / "on.log").read_text()  # it was watched
    off, on = min(times["off"][1]), min(times["on"][1])
    assert off >= 0.2
    assert on - off < 0.5, times


def test_supervise_starts_the_script_again_where_forking_is_unsafe(tmp_path):
    """A process with a second thread is not forked (a thread's locks would be copied
    held): the script is started again as the child, which does the work."""
    script = supervised_script(tmp_path, "threaded", 600, 0.1)
    script.write_text("import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
                      + script.read_text())
    parent = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert parent.returncode == 0, parent.stderr
    child = int((tmp_path / "threaded.pid").read_text())
    log = (tmp_path / "threaded.log").read_text()
    assert f"job: process {child} started (attempt 1 of 1" in log


def running(pid: int) -> bool:
    """Alive and not a zombie (in a container nobody may reap an orphan)."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_supervised_child_dies_with_its_parent(tmp_path):
    """SIGKILL of the watchdog (as of a job Snakemake or the scheduler kills) takes the
    working child with it: no orphan goes on writing into the job's folders."""
    script = supervised_script(tmp_path, "orphan", 600, 60)
    parent = subprocess.Popen([sys.executable, str(script)])
    pid_file = tmp_path / "orphan.pid"
    try:
        deadline = time.time() + 60
        while not pid_file.exists() and time.time() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert child != parent.pid and running(child)
        parent.kill()
        parent.wait()
        deadline = time.time() + 10
        while time.time() < deadline:
            if not running(child):
                break
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError("the child outlived its parent")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_watchdog_kills_a_silent_child_at_the_timeout(caplog, monkeypatch):
    """A child that never beats (and ignores SIGTERM, as a hung XLA ignores signals) is
    killed with SIGKILL once the timeout has passed, not before."""
    from kpms_flow.watchdog import FitHung, run_watched

    child = python_child("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)")
    monkeypatch.setattr(logging.getLogger("kpms_flow"), "propagate", True)
    start = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="kpms_flow"), pytest.raises(FitHung, match="no progress for 1 s in 1 attempts"):
        run_watched(child, timeout_s=1.0, max_restarts=0, what="silent")
    elapsed = time.perf_counter() - start
    assert 1.0 <= elapsed < 10, elapsed
    pid = int(re.search(r"silent: process (\d+) started", caplog.text).group(1))
    assert re.search(rf"silent: no progress for 1 s after 0 sweeps: process {pid} killed \(SIGKILL\)$", caplog.text, re.M)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def test_watchdog_keeps_a_beating_child_past_the_timeout(caplog, monkeypatch):
    """Beats reset the timer: a child that runs 4 timeouts long but beats every 0.1 s is
    never killed, and its sweeps are counted (a later hang's message gives them)."""
    from kpms_flow.watchdog import FitHung, run_watched

    child = python_child(
        "import time\nfrom kpms_flow.watchdog import beat\n"
        "for _ in range(20):\n    beat(sweep=True)\n    time.sleep(0.1)\n"
        "beat()\ntime.sleep(120)"
    )
    monkeypatch.setattr(logging.getLogger("kpms_flow"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="kpms_flow"), pytest.raises(FitHung):
        run_watched(child, timeout_s=0.5, max_restarts=0, what="beating")
    assert re.search(r"beating: no progress for 1 s after 20 sweeps: process \d+ killed", caplog.text), caplog.text


def test_beat_writes_only_in_the_watchdogs_own_child(monkeypatch):
    """beat() is a no-op without a watchdog and in the child's own children (which inherit
    the variables but not the descriptor); in the watched child it writes one byte."""
    from kpms_flow import watchdog

    readable, writable = os.pipe()
    os.set_blocking(readable, False)
    try:
        monkeypatch.delenv(watchdog.HEARTBEAT_ENV, raising=False)
        watchdog.beat()
        monkeypatch.setenv(watchdog.HEARTBEAT_ENV, str(writable))
        monkeypatch.setenv(watchdog.PARENT_ENV, str(os.getppid() + 1))  # a grandchild
        watchdog.beat(sweep=True)
        with pytest.raises(BlockingIOError):
            os.read(readable, 10)
        monkeypatch.setenv(watchdog.PARENT_ENV, str(os.getppid()))
        watchdog.beat(sweep=True)
        watchdog.beat()
        assert os.read(readable, 10) == watchdog.SWEEP + watchdog.PROGRESS
    finally:
        os.close(readable)
        os.close(writable)


# ---------------------------------------------------------------- checkpoints and NaNs
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, {scripts!r})
    from keypoint_moseq import fitting
    from kpms_flow.kpms_patches import recorded_saves

    work = Path({work!r})
    big = {{"states": {{"x": np.random.rand(2000, 4000)}}, "seed": np.arange(2)}}
    with recorded_saves(work):
        fitting.save_hdf5(str(work / "checkpoint.h5"), {{"model_snapshots": {{"0": big}}, "data": {{"Y": np.zeros(3)}}}})
        for iteration in range(1, 100):
            fitting.save_hdf5(str(work / "checkpoint.h5"), big, f"model_snapshots/{{iteration}}", exist_ok=True)
    """
)


def test_snapshot_cut_short_by_a_kill_is_not_trusted(tmp_path):
    """keypoint-moseq writes snapshots into its checkpoint in place; kill it mid-write."""
    from kpms_flow.fitting import recorded_iterations, saved_iterations, trusted_iterations

    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(scripts=str(ROOT / "scripts"), work=str(work)))
    proc = subprocess.Popen([sys.executable, str(script)])
    checkpoint = work / "checkpoint.h5"
    try:
        # Once two snapshots are recorded, kill while the file grows with the next one.
        deadline = time.time() + 120
        while len(recorded_iterations(work)) < 3 and time.time() < deadline:
            time.sleep(0.05)
        size = checkpoint.stat().st_size
        while checkpoint.stat().st_size <= size + 8_000_000 and time.time() < deadline:
            time.sleep(0.005)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    done = recorded_iterations(work)
    assert len(done) >= 3
    trusted = trusted_iterations(work)
    assert trusted == done and max(done) + 1 not in trusted
    with h5py.File(checkpoint) as f:
        for iteration in trusted[1:]:
            assert f[f"model_snapshots/{iteration}/states/x"].shape == (2000, 4000)
            assert np.isfinite(f[f"model_snapshots/{iteration}/states/x"][-1]).all()
    # The half-written snapshot, where HDF5 shows it, is in the file but not trusted.
    assert set(saved_iterations(checkpoint)) - set(trusted) <= {max(done) + 1}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    import keypoint_moseq as kpms  # noqa: F401  (x64 before jax_moseq)
    import jax

    from kpms_flow.config import kpms_config

    jax.config.update("jax_compilation_cache_dir", str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    coordinates, confidences, bodyparts = tiny_keypoints(tmp_path_factory.mktemp("tiny"))
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = {key: spec["default"] for key, spec in schema["properties"].items() if "default" in spec}
    for section in ("ar_hypparams", "trans_hypparams", "obs_hypparams", "cen_hypparams", "error_estimator"):
        config[section] = {k: v["default"] for k, v in schema["properties"][section]["properties"].items()}
    config.update(anterior_bodyparts=["nose"], posterior_bodyparts=["tailbase"])
    config["trans_hypparams"]["num_states"] = 10
    kcfg = kpms_config(config, bodyparts, latent_dim=3)
    data, metadata = kpms.format_data(coordinates, confidences, **kcfg)
    pca = kpms.fit_pca(**data, **kcfg)
    return data, metadata, pca, kcfg


@pytest.mark.workflow  # a real fit (in-process)
def test_nans_are_retried_with_larger_jitter_then_fail_clearly(tiny_data, tmp_path, caplog, monkeypatch):
    """A centroid variance of 1e-30 makes keypoint-moseq's full model produce NaNs at once
    (real NaNs; keypoint-moseq only warns). AR-HMM sweeps take no jitter and are not retried:
    no hyperparameter we tried (S_0_scale 1e-300..1e30, K_0_scale 1e30, kappa 1e300) gave
    AR-HMM NaNs, so that branch has no test of its own."""
    from kpms_flow.fitting import FitSpec, NumericalError, init_arhmm, run_fit

    data, metadata, pca, kcfg = tiny_data
    kcfg = dict(kcfg, cen_hypparams={"sigmasq_loc": 1e-30})
    spec = FitSpec(work_dir=tmp_path / "work", output=tmp_path / "checkpoint.h5", num_iters=4,
                   ar_only=False, fingerprint="nan-test", save_every_n_iters=2, jitter=1e-3,
                   nan_retries=1, jitter_factor=10.0)
    monkeypatch.setattr(logging.getLogger("kpms_flow"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="kpms_flow"):
        with pytest.raises(NumericalError) as error:
            run_fit(spec, data, metadata, lambda: (init_arhmm(data, pca, kcfg, 1e4, 0, 30.0), 0))
    message = str(error.value)
    assert re.search(r"fit in .*work stopped on NaNs after iteration 0 of 4 .*retried 1 time\(s\) with "
                     r"jitter 0\.01 \(config key 'nan_retry'\)", message), message
    retries = [r.getMessage() for r in caplog.records if "NaNs after iteration" in r.getMessage()]
    assert retries == ["NaNs after iteration 0: retry 1 of 1 from iteration 0 with jitter 0.01"]
    assert not spec.output.exists()
    # The retries are kept with the work folder: a rerun goes on with the larger jitter.
    assert json.loads((spec.work_dir / "nan_retries.json").read_text()) == [
        {"from_iteration": 0, "jitter": 0.01}
    ]
    spec.nan_retries = 2
    with caplog.at_level(logging.INFO, logger="kpms_flow"):
        with pytest.raises(NumericalError, match=r"retried 2 time\(s\) with jitter 0\.01, 0\.1"):
            run_fit(spec, data, metadata, None)
    assert "resuming" in caplog.text


@pytest.mark.workflow  # a real fit (in-process)
def test_location_aware_model_is_fitted_resumed_and_applied(tiny_data, tmp_path):
    """config location_aware reaches keypoint-moseq's init_model, fit_model (through FitSpec,
    also for a fit continued from a checkpoint, as the full model continues the AR-HMM) and
    apply_model: the fitted and applied models are allo_keypoint_slds models (they carry its
    location parameters)."""
    import keypoint_moseq as kpms

    from kpms_flow.fitting import FitSpec, continue_with_kappa, init_arhmm, run_fit

    data, metadata, pca, kcfg = tiny_data
    kcfg = dict(kcfg, location_aware=True)
    spec = FitSpec(work_dir=tmp_path / "work", output=tmp_path / "checkpoint.h5", num_iters=2,
                   ar_only=False, fingerprint="allo-test", save_every_n_iters=1, location_aware=True)
    model = run_fit(spec, data, metadata, lambda: (init_arhmm(data, pca, kcfg, 1e4, 0, 30.0), 0))
    assert {"delta_h", "delta_v"} <= set(model["params"])
    with h5py.File(spec.output) as f:
        assert "delta_h" in f["model_snapshots/2/params"]
    # a fit continued from that checkpoint at a new kappa keeps the location-aware sweeps
    continued = FitSpec(work_dir=tmp_path / "work2", output=tmp_path / "continued.h5", num_iters=3,
                        ar_only=False, fingerprint="allo-continued", save_every_n_iters=1,
                        location_aware=True)
    model = run_fit(continued, data, metadata, lambda: continue_with_kappa(spec.output, 1e3))
    assert {"delta_h", "delta_v"} <= set(model["params"])
    assert float(model["hypparams"]["trans_hypparams"]["kappa"]) == 1e3
    applied = kpms.apply_model(model, data, metadata, num_iters=1, save_results=False,
                               **dict(kcfg, **model["hypparams"]))
    num_states = int(kcfg["trans_hypparams"]["num_states"])
    assert applied
    for result in applied.values():
        labels = np.asarray(result["syllable"])
        assert labels.ndim == 1 and labels.size > 0 and labels.max() < num_states
