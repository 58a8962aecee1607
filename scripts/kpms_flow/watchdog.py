"""A watchdog for fitting jobs: a fit that stops making progress is killed and restarted.

With jax/jaxlib 0.10.2, CPU full-model fits of 50,000 frames hung inside XLA (all threads
idle, signals ignored) after 1 to 3 sweeps (keypoint-moseq-facts.md). Such a job never ends
on its own, so every rule that runs keypoint-moseq sweeps starts with :func:`supervise`:

* the rule script's process becomes the *parent*: it imports no JAX, forks a *child* that
  carries on with the script and does the work, and waits on a heartbeat pipe (forking,
  not starting the script again, spares the child the interpreter's and the imports'
  start-up; :func:`run_watched` starts a command instead);
* the child writes a byte to the pipe after every sweep (:func:`beat`; keypoint-moseq's
  ``fit_model`` and ``apply_model`` both call jax-moseq's ``resample_model`` once per
  sweep);
* the parent sleeps in ``select`` on the pipe and on the child's exit (a pidfd), so it wakes
  at once when the child beats or ends: a job ends when its child does, not at the next
  poll;
* no beat for ``timeout_s``: the parent kills the child (SIGKILL: a hung XLA ignores the
  others), says so in the rule's log and starts it again. A fit resumes from its last saved
  iteration (:func:`kpms_flow.fitting.run_fit`), which reproduces the uninterrupted fit;
* after ``max_restarts`` restarts without success the job fails, naming the cause.

The child writes to the parent's log (it inherits the file descriptors) and dies with the
parent (``PR_SET_PDEATHSIG``), so a killed job leaves no orphan writing into its work folder.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HEARTBEAT_ENV = "KPMS_FLOW_WATCHDOG_HEARTBEAT"  # the child's file descriptor of the pipe
PARENT_ENV = "KPMS_FLOW_WATCHDOG_PARENT"
ERROR_ENV = "KPMS_FLOW_WATCHDOG_ERROR"
SWEEP, PROGRESS = b"s", b"."  # what beat() writes: a finished sweep, other progress

log = logging.getLogger("kpms_flow")


class FitHung(RuntimeError):
    """The child made no progress for the whole timeout in every attempt."""


class ChildFailed(RuntimeError):
    """The child exited with an error; the message is the child's own."""


# ---------------------------------------------------------------- the parent
def supervise(log_path, settings: Mapping | None, what: str = "fit") -> logging.Logger:
    """Run the calling rule script under the watchdog; return the logger to use.

    Call it at the top of a rule script, before JAX is imported. In the parent it never
    returns: it forks a watched child that carries on with the script (or, where forking is
    unsafe, starts the script again) and exits with the child's success (or raises with the
    child's error). In the child, and when the watchdog is off
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
    max_restarts = int(settings.get("max_restarts", 0))
    if _can_fork():
        if _run_attempts(_fork, timeout_s, max_restarts, what) is _IN_CHILD:
            return logger
    else:
        # The script Snakemake wrote (.snakemake/scripts/tmp*.py) exists until this process
        # ends.
        run_watched([sys.executable, *sys.argv], timeout_s, max_restarts, what)
    # The child did the job. This process holds nothing to tear down but its log: skip the
    # interpreter's shutdown, which would add a tenth of a second to every fitting job.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_watched(
    cmd: Sequence[str],
    timeout_s: float,
    max_restarts: int = 0,
    what: str = "fit",
    env: Mapping | None = None,
) -> int:
    """Run ``cmd`` as a watched child until it succeeds; return the number of restarts.

    Raises :class:`ChildFailed` when the child fails (not restarted: an error would only
    repeat) and :class:`FitHung` when it hung in all ``max_restarts + 1`` attempts.
    """

    def start(beat_end: int, watch_env: dict):
        child_env = dict(os.environ if env is None else env)
        child_env.update(watch_env)
        return subprocess.Popen(list(cmd), env=child_env, pass_fds=(beat_end,))

    return _run_attempts(start, timeout_s, max_restarts, what)


_IN_CHILD = object()  # what _run_attempts returns in a forked child


def _run_attempts(start, timeout_s: float, max_restarts: int, what: str):
    """The watchdog's loop. ``start(beat_end, env)`` starts a child that beats on the
    descriptor ``beat_end`` and returns its handle, or returns None in a forked child,
    where this returns ``_IN_CHILD`` at once, leaving the parent's clean-up to the parent.
    """
    parent = os.getpid()
    scratch = tempfile.mkdtemp(prefix="kpms_flow_watchdog_")
    error_file = Path(scratch, "error")
    try:
        for attempt in range(max_restarts + 1):
            beats, beat_end = os.pipe()
            # A child must never block on a beat (a parent that is busy, or gone).
            os.set_blocking(beat_end, False)
            watch_env = {
                HEARTBEAT_ENV: str(beat_end),
                PARENT_ENV: str(parent),
                ERROR_ENV: str(error_file),
            }
            try:
                child = start(beat_end, watch_env)
            except BaseException:
                os.close(beats)
                os.close(beat_end)
                raise
            if child is None:
                os.close(beats)
                return _IN_CHILD
            os.close(beat_end)  # the child's copy is the only writer: EOF = it exited
            log.info(
                "%s: process %d started (attempt %d of %d; watchdog: restarted after %g s "
                "without a finished sweep)",
                what,
                child.pid,
                attempt + 1,
                max_restarts + 1,
                timeout_s,
            )
            try:
                idle, sweeps = _watch(child, beats, timeout_s)
            finally:
                os.close(beats)
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
                "%s: no progress for %.0f s after %d sweeps: process %d killed (SIGKILL)%s",
                what,
                idle,
                sweeps,
                child.pid,
                "; starting it again, a fit resumes from its last saved iteration"
                if attempt < max_restarts
                else "",
            )
        raise FitHung(
            f"{what} made no progress for {timeout_s:g} s in {max_restarts + 1} attempts and "
            "was killed each time (config key 'watchdog'). A fit that hangs inside XLA is a "
            "known JAX problem (jax/jaxlib 0.10.2 on CPU): use the pinned environment "
            "(envs/requirements-cpu.lock.txt), or raise watchdog.timeout_s if single sweeps "
            "are that slow (docs/troubleshooting.md)"
        )
    finally:
        if os.getpid() == parent:
            shutil.rmtree(scratch, ignore_errors=True)


def _watch(child: subprocess.Popen, beats: int, timeout_s: float) -> tuple[float | None, int]:
    """Wait for the child; kill it when it has not beaten for ``timeout_s``.

    Sleeps in ``select`` on the heartbeat pipe and the child's pidfd, so it wakes when the
    child beats or exits, never on a fixed poll. Returns ``(None, sweeps)`` when the child
    exited, else ``(seconds idle when killed, sweeps)``.
    """
    try:
        exited = os.pidfd_open(child.pid)  # readable once the child has exited (Linux 5.3+)
    except (AttributeError, OSError):
        exited = None
    try:
        watched = [beats] + ([exited] if exited is not None else [])
        sweeps, last = 0, time.monotonic()
        while True:
            idle = time.monotonic() - last
            if idle >= timeout_s:
                if child.poll() is not None:  # exited just now, with its pipe still held
                    return None, sweeps
                child.kill()
                child.wait()
                return idle, sweeps
            wait = timeout_s - idle
            if exited is None:
                # No pidfd: a grandchild holding the pipe would hide the exit; look now and then.
                if child.poll() is not None:
                    return None, sweeps
                wait = min(wait, 1.0)
            ready, _, _ = select.select(watched, [], [], wait)
            if exited is not None and exited in ready:
                child.wait()
                return None, sweeps
            if beats in ready:
                data = os.read(beats, 65536)
                if data:
                    sweeps += data.count(SWEEP)
                    last = time.monotonic()
                else:  # EOF: the child closed its end, i.e. it exited
                    watched.remove(beats)
                    if exited is None:
                        child.wait()
                        return None, sweeps
    finally:
        if exited is not None:
            os.close(exited)


def _can_fork() -> bool:
    """Fork only a clean process: one thread, JAX not imported (XLA's threads and state do
    not survive a fork). Otherwise the script is started again (``run_watched``)."""
    return (
        hasattr(os, "fork")
        and threading.active_count() == 1
        and not any(m in sys.modules for m in ("jax", "jaxlib"))
    )


class _Forked:
    """The part of :class:`subprocess.Popen` the watchdog uses, for a forked child."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self):
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self):
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


def _fork(beat_end: int, watch_env: dict):
    """Fork a child that carries on with the script; its handle here, None in the child."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or the child would write the parent's buffered text again
    pid = os.fork()
    if pid:
        return _Forked(pid)
    os.environ.update(watch_env)  # for beat(), in this process only
    _set_up_child()
    return None


# ---------------------------------------------------------------- the child
def _become_child() -> logging.Logger:
    """Set up a child started by :func:`run_watched` (a new process running the script)."""
    from .runtime import log_to

    # File descriptors 1 and 2 are the parent's, i.e. the rule's log (appended to, not
    # truncated as log_to(path) would).
    stream = open(2, "w", buffering=1, closefd=False)
    sys.stdout = sys.stderr = stream
    logger = log_to(None)
    _set_up_child()
    return logger


def _set_up_child() -> None:
    """Die with the parent; errors to the rule's log, and their text to the parent."""
    _die_with_parent()
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    if parent and os.getppid() != parent:
        os._exit(1)  # the parent died before the death signal was set
    error_path = os.environ.get(ERROR_ENV)

    def report(kind, error, trace):
        # The traceback to the log; the parent raises the message, which reaches the console.
        sys.__excepthook__(kind, error, trace)
        if error_path:
            Path(error_path).write_text(str(error) or kind.__name__)

    sys.excepthook = report
    beat()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _heartbeat_fd() -> int | None:
    """The heartbeat pipe's descriptor when this process is a watched child, else None.

    Only the watchdog's own child may use it: the variable is inherited by any process the
    child starts, where that descriptor number may be closed or another file.
    """
    fd = os.environ.get(HEARTBEAT_ENV)
    if not fd or not fd.isdigit() or os.environ.get(PARENT_ENV) != str(os.getppid()):
        return None
    return int(fd)


def beat(sweep: bool = False) -> None:
    """Tell the parent this process is making progress; ``sweep=True`` after a finished
    sweep (the parent counts those for its log).

    Cheap (one ``write`` of one byte) and safe anywhere: a no-op outside a watched child,
    and it never blocks or raises when the parent is slow to read or gone.
    """
    fd = _heartbeat_fd()
    if fd is None:
        return
    try:
        os.write(fd, SWEEP if sweep else PROGRESS)
    except OSError:
        # A full pipe (parent slow to read) already says we are alive; a parent that is
        # gone kills us anyway (PR_SET_PDEATHSIG).
        pass


def sweep_finished() -> None:
    """Beat for a finished sweep (called by kpms_flow.kpms_patches' sweep wrapper)."""
    beat(sweep=True)
