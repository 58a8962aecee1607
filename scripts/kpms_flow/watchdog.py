"""A watchdog for fitting jobs: a fit that stops making progress is killed and restarted.

With jax/jaxlib 0.10.2, CPU full-model fits of 50,000 frames hung inside XLA (all threads
idle, signals ignored) after 1 to 3 sweeps (keypoint-moseq-facts.md). Such a job never ends
on its own, so every rule that runs keypoint-moseq sweeps starts with :func:`supervise`:

* the rule script's process becomes the *parent*: it imports no JAX, starts the same script
  again as a *child* process that does the work, and watches a heartbeat file;
* the child touches the heartbeat after every sweep (keypoint-moseq's ``fit_model`` and
  ``apply_model`` both call jax-moseq's ``resample_model`` once per sweep);
* no heartbeat for ``timeout_s``: the parent kills the child (SIGKILL: a hung XLA ignores
  the others), says so in the rule's log and starts it again. A fit resumes from its last
  saved iteration (:func:`kpms_flow.fitting.run_fit`), which reproduces the uninterrupted fit;
* after ``max_restarts`` restarts without success the job fails, naming the cause.

The child writes to the parent's log (it inherits the file descriptors) and dies with the
parent (``PR_SET_PDEATHSIG``), so a killed job leaves no orphan writing into its work folder.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HEARTBEAT_ENV = "KPMS_FLOW_WATCHDOG_HEARTBEAT"
PARENT_ENV = "KPMS_FLOW_WATCHDOG_PARENT"
ERROR_ENV = "KPMS_FLOW_WATCHDOG_ERROR"

log = logging.getLogger("kpms_flow")
_sweeps = 0


class FitHung(RuntimeError):
    """The child made no progress for the whole timeout in every attempt."""


class ChildFailed(RuntimeError):
    """The child exited with an error; the message is the child's own."""


# ---------------------------------------------------------------- the parent
def supervise(log_path, settings: Mapping | None, what: str = "fit") -> logging.Logger:
    """Run the calling rule script under the watchdog; return the logger to use.

    Call it at the top of a rule script, before JAX is imported. In the parent it never
    returns: it runs the script again as a watched child and exits with the child's success
    (or raises with the child's error). In the child, and when the watchdog is off
    (``timeout_s`` 0), it returns the logger and the script carries on in this process.

    ``settings`` is the config's ``watchdog`` section (``timeout_s``, ``max_restarts``).
    """
    from .runtime import log_to

    if os.environ.get(HEARTBEAT_ENV):
        return _become_child()
    logger = log_to(log_path)
    timeout_s = float((settings or {}).get("timeout_s", 0) or 0)
    if timeout_s <= 0:
        return logger
    # The script Snakemake wrote (.snakemake/scripts/tmp*.py) exists until this process ends.
    run_watched(
        [sys.executable, *sys.argv],
        timeout_s=timeout_s,
        max_restarts=int(settings.get("max_restarts", 0)),
        what=what,
    )
    sys.exit(0)


def run_watched(
    cmd: Sequence[str],
    timeout_s: float,
    max_restarts: int = 0,
    what: str = "fit",
    poll_s: float | None = None,
    env: Mapping | None = None,
) -> int:
    """Run ``cmd`` as a watched child until it succeeds; return the number of restarts.

    Raises :class:`ChildFailed` when the child fails (not restarted: an error would only
    repeat) and :class:`FitHung` when it hung in all ``max_restarts + 1`` attempts.
    """
    poll_s = poll_s or min(5.0, max(timeout_s / 20, 0.1))
    with tempfile.TemporaryDirectory(prefix="kpms_flow_watchdog_") as scratch:
        heartbeat = Path(scratch, "heartbeat")
        error_file = Path(scratch, "error")
        child_env = dict(os.environ if env is None else env)
        child_env.update(
            {HEARTBEAT_ENV: str(heartbeat), PARENT_ENV: str(os.getpid()), ERROR_ENV: str(error_file)}
        )
        for attempt in range(max_restarts + 1):
            heartbeat.write_text("0")
            child = subprocess.Popen(list(cmd), env=child_env)
            log.info(
                "%s: process %d started (attempt %d of %d; watchdog: restarted after %g s "
                "without a finished sweep)",
                what,
                child.pid,
                attempt + 1,
                max_restarts + 1,
                timeout_s,
            )
            idle = _watch(child, heartbeat, timeout_s, poll_s)
            if idle is None and child.returncode == 0:
                return attempt
            if idle is None:
                message = error_file.read_text().strip() if error_file.exists() else ""
                if child.returncode < 0:
                    cause = signal.Signals(-child.returncode).name
                    message = message or (
                        f"{what} process {child.pid} was killed by {cause} "
                        "(out of memory, or killed from outside?)"
                    )
                raise ChildFailed(message or f"{what} process exited with status {child.returncode}")
            log.error(
                "%s: no progress for %.0f s after %s sweeps: process %d killed (SIGKILL)%s",
                what,
                idle,
                _read_sweeps(heartbeat),
                child.pid,
                "; starting it again, a fit resumes from its last saved iteration"
                if attempt < max_restarts
                else "",
            )
    raise FitHung(
        f"{what} made no progress for {timeout_s:g} s in {max_restarts + 1} attempts and was "
        "killed each time (config key 'watchdog'). A fit that hangs inside XLA is a known "
        "JAX problem (jax/jaxlib 0.10.2 on CPU): use the pinned environment "
        "(envs/requirements-cpu.lock.txt), or raise watchdog.timeout_s if single sweeps "
        "are that slow (docs/troubleshooting.md)"
    )


def _watch(child: subprocess.Popen, heartbeat: Path, timeout_s: float, poll_s: float):
    """Wait for the child; kill it when the heartbeat is older than ``timeout_s``.

    Returns None when the child exited, else the seconds it had been idle when killed.
    """
    started = time.time()
    while child.poll() is None:
        time.sleep(poll_s)
        try:
            last = max(heartbeat.stat().st_mtime, started)
        except FileNotFoundError:
            last = started
        idle = time.time() - last
        if idle > timeout_s and child.poll() is None:
            child.kill()
            child.wait()
            return idle
    return None


def _read_sweeps(heartbeat: Path) -> str:
    try:
        return heartbeat.read_text().strip() or "0"
    except OSError:
        return "?"


# ---------------------------------------------------------------- the child
def _become_child() -> logging.Logger:
    from .runtime import log_to

    _die_with_parent()
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    if parent and os.getppid() != parent:
        os._exit(1)  # the parent died before the death signal was set
    # File descriptors 1 and 2 are the parent's, i.e. the rule's log (appended to, not
    # truncated as log_to(path) would).
    stream = open(2, "w", buffering=1, closefd=False)
    sys.stdout = sys.stderr = stream
    logger = log_to(None)
    error_path = os.environ.get(ERROR_ENV)

    def report(kind, error, trace):
        sys.__excepthook__(kind, error, trace)
        if error_path:
            Path(error_path).write_text(str(error) or kind.__name__)

    sys.excepthook = report
    beat()
    return logger


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def beat() -> None:
    """Tell the parent this process is making progress (no-op outside a watched child)."""
    path = os.environ.get(HEARTBEAT_ENV)
    if path:
        with open(path, "w") as handle:
            handle.write(str(_sweeps))


def sweep_finished() -> None:
    """Count a finished sweep and beat (called by kpms_flow.kpms_patches' sweep wrapper)."""
    global _sweeps
    _sweeps += 1
    beat()
