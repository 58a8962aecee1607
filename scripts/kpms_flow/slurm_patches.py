"""Job states the way a long run needs them, for snakemake-executor-plugin-slurm 2.8.0.

Two faults of the plugin's job-status query make Snakemake wait for ever (the first found on
tests/slurm/cluster.sh, the second read in the plugin's code and reported by its users):

1. ``scancel``: sacct reports a cancelled job as ``CANCELLED by <uid>``, which the plugin
   compares with ``CANCELLED`` and so takes for a job still running (the old
   Snakemake-Profiles/slurm status script had the same bug, fixed in its pull request 22).
   The wrapper gives the plugin the state's first word.
2. Accounting outages. The plugin asks ``sacct`` (slurmdbd's database) for its jobs'
   states. When that query fails a few times in a row (slurmdbd down for maintenance, a
   database restart, a network hiccup), it drops every job it was following and waits for
   ever for them, even after the database is back (the plugin's issues 207 and 331). A
   week-long run must instead wait out the outage, then go on: the wrapper retries a failed
   query every ``retry_s`` seconds, with a warning, until it answers; no job is dropped.

:func:`patch_status_queries` wraps the plugin's one status query. A failed query is
retried; after ``max_outage_s`` without an answer it raises an error that says what
happened and what to do: Snakemake then stops (its jobs keep running in SLURM) and the same
command, run once the cluster answers again, takes over (kpms_flow.cluster refuses to submit
the jobs still running a second time).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time

TARGET_VERSION = "2.8.0"
RETRY_S = 30
# How long Snakemake waits for job states before it gives up (minutes; env var, because
# it is a setting of the machine Snakemake runs on, not of the science).
MAX_OUTAGE_ENV = "KPMS_FLOW_SLURM_STATUS_OUTAGE_MIN"
DEFAULT_MAX_OUTAGE_MIN = 240


class StatusOutage(RuntimeError):
    """The cluster did not report job states for longer than the allowed outage."""


def outage_message(command: str, waited_s: float) -> str:
    return (
        f"SLURM did not report the state of this run's jobs for {waited_s / 60:.0f} min "
        f"(`{command.split()[0]}` failed every {RETRY_S} s; slurmdbd or slurmctld down?). "
        "Snakemake stops here; the jobs already submitted keep running in SLURM and nothing "
        "finished is lost. When `sacct`/`squeue` answer again, run the same command: it "
        "names any job of this run still queued or running (wait for it or scancel it), "
        "then goes on without redoing finished jobs. To wait longer before stopping, set "
        f"{MAX_OUTAGE_ENV} (minutes, default {DEFAULT_MAX_OUTAGE_MIN})."
    )


def max_outage_s() -> float:
    return 60 * float(os.environ.get(MAX_OUTAGE_ENV) or DEFAULT_MAX_OUTAGE_MIN)


def waiting_query(query, max_outage: float, retry_s: float = RETRY_S, clock=time.monotonic,
                  sleep=asyncio.sleep):
    """``query`` (the plugin's ``query_job_status``), retried while it fails (returns
    ``(None, None)``) instead of letting the plugin drop its jobs, with states reduced to
    their first word."""

    async def query_job_status(command: str, logger):
        first_failure = None
        while True:
            status, duration = await query(command, logger)
            if status is not None:
                if first_failure is not None:
                    logger.warning(f"kpms-flow: SLURM answers again after {clock() - first_failure:.0f} s")
                # "CANCELLED by 1000" -> "CANCELLED" (the plugin matches whole states)
                return {job: state.split(" ")[0] for job, state in status.items()}, duration
            now = clock()
            if first_failure is None:
                first_failure = now
                logger.warning(
                    f"kpms-flow: the job status query failed ({command.split()[0]}); keeping "
                    f"the jobs and asking again every {retry_s:.0f} s"
                )
            if now - first_failure > max_outage:
                raise StatusOutage(outage_message(command, now - first_failure))
            await sleep(retry_s)

    query_job_status.kpms_flow_patched = True
    return query_job_status


def check_assumptions(plugin) -> list[str]:
    """What this patch assumes of the plugin module; an empty list when all hold."""
    problems = []
    version = getattr(plugin, "__version__", None)
    if version is None:
        from importlib.metadata import version as installed_version

        version = installed_version("snakemake-executor-plugin-slurm")
    if version != TARGET_VERSION:
        problems.append(f"written for snakemake-executor-plugin-slurm {TARGET_VERSION}, found {version}")
    query = getattr(plugin, "query_job_status", None)
    if query is None or not inspect.iscoroutinefunction(query):
        problems.append("the plugin has no async module-level query_job_status any more")
    else:
        source = inspect.getsource(plugin.Executor.check_active_jobs)
        if "await query_job_status(" not in source:
            problems.append("Executor.check_active_jobs no longer calls query_job_status")
        if "return None, None" not in inspect.getsource(query):
            problems.append("query_job_status no longer signals a failure with (None, None)")
    return problems


def patch_status_queries(plugin=None, max_outage: float | None = None) -> list[str]:
    """Install :func:`waiting_query` into the plugin (once). Returns the assumptions that no
    longer hold (then nothing is patched: the caller warns)."""
    if plugin is None:
        import snakemake_executor_plugin_slurm as plugin
    if getattr(plugin.query_job_status, "kpms_flow_patched", False):
        return []
    problems = check_assumptions(plugin)
    if not problems:
        plugin.query_job_status = waiting_query(
            plugin.query_job_status, max_outage_s() if max_outage is None else max_outage
        )
    return problems


# The longest wait between two job-status checks (seconds; env var, a setting of the machine
# Snakemake runs on). Unset: the plugin's own backoff.
STATUS_INTERVAL_ENV = "KPMS_FLOW_SLURM_STATUS_MAX_S"


def status_interval_cap() -> float | None:
    """``KPMS_FLOW_SLURM_STATUS_MAX_S`` as seconds, or None where it is unset."""
    value = os.environ.get(STATUS_INTERVAL_ENV, "").strip()
    if not value:
        return None
    try:
        cap = float(value)
    except ValueError:
        cap = -1.0
    if cap <= 0:
        raise ValueError(f"{STATUS_INTERVAL_ENV} must be a positive number of seconds, got {value!r}")
    return cap


def cap_status_interval(plugin=None, max_s: float | None = None) -> float | None:
    """Keep the plugin's wait between two job-status checks at or below ``max_s`` seconds.

    The plugin waits 10 s longer after every check that finds no job finished, up to 180 s,
    which spares a big cluster's controller. On a cluster of short jobs every step of the
    workflow then waits up to minutes for a job that has ended (on the test cluster, the
    demo's run took 1,159 s with the backoff, 1,000 s with a 5 s cap). ``max_s`` None: :func:`status_interval_cap`. Returns the cap
    in force (None: the plugin's own backoff, nothing patched).
    """
    max_s = status_interval_cap() if max_s is None else max_s
    if max_s is None:
        return None
    if plugin is None:
        import snakemake_executor_plugin_slurm as plugin
    # The property of snakemake-interface-executor-plugins' RemoteExecutor, which the
    # plugin's check_active_jobs sets after each check (and its sleep() reads).
    interval = plugin.Executor.next_seconds_between_status_checks

    def capped(self, seconds):
        interval.fset(self, seconds if seconds is None else min(seconds, max_s))

    plugin.Executor.next_seconds_between_status_checks = property(interval.fget, capped)
    return max_s
