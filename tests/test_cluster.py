"""Runs on a cluster that fails: the guard against submitting an earlier run's SLURM jobs twice
(kpms_flow.cluster, on squeue output as SLURM writes it) and job states kept through an
accounting outage (kpms_flow.slurm_patches); tests/test_slurm_faults.py runs both on the real
cluster."""

from __future__ import annotations

import asyncio
import os
import types
from pathlib import Path

import pytest

from kpms_flow import slurm_patches
from kpms_flow.cluster import check_no_earlier_jobs, earlier_jobs, earlier_jobs_message


def squeue_lines(workdir: Path, other: Path) -> str:
    return "\n".join([
        f"101|RUNNING|{workdir}|rule_fit_full_model_wildcards_0",
        f"102|PENDING|{workdir}/|group_sessions_sessions_0",  # same folder, trailing slash
        f"103|COMPLETED|{workdir}|rule_select_model",  # finished: writes nothing more
        f"104|RUNNING|{other}|rule_fit_arhmm_wildcards_0",  # another project's run
        f"105|RUNNING|{workdir}|an interactive job",  # not submitted by the plugin
        "garbled line",
    ])


def test_only_active_plugin_jobs_of_this_working_directory_count(tmp_path):
    other = tmp_path / "other"
    jobs = earlier_jobs(squeue_lines(tmp_path, other), tmp_path)
    assert [(j.job_id, j.state, j.rule) for j in jobs] == [
        ("101", "RUNNING", "fit_full_model"),
        ("102", "PENDING", "group_sessions_sessions_0"),
    ]


def test_message_names_the_jobs_and_both_ways_out(tmp_path):
    jobs = earlier_jobs(squeue_lines(tmp_path, tmp_path / "other"), tmp_path)
    message = earlier_jobs_message(jobs, tmp_path)
    assert message.startswith(f"2 SLURM job(s) submitted by an earlier run of this workflow in {tmp_path}")
    assert "101  RUNNING    fit_full_model" in message
    assert "squeue --me" in message and "scancel 101 102" in message


def fake_squeue(tmp_path: Path, monkeypatch, script: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    squeue.write_text("#!/bin/sh\n" + script)
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_check_raises_with_the_message_when_squeue_lists_them(tmp_path, monkeypatch):
    fake_squeue(tmp_path, monkeypatch, f"echo '7|RUNNING|{tmp_path}|rule_probe_kappa_wildcards_x'\n")
    with pytest.raises(RuntimeError, match=r"7  RUNNING    probe_kappa"):
        check_no_earlier_jobs(tmp_path)


def test_check_is_silent_without_jobs_or_without_a_reachable_controller(tmp_path, monkeypatch):
    fake_squeue(tmp_path, monkeypatch, "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1\n")
    check_no_earlier_jobs(tmp_path)
    (tmp_path / "bin" / "squeue").write_text("#!/bin/sh\nexit 0\n")
    check_no_earlier_jobs(tmp_path)


# ---- job states through an accounting outage (kpms_flow.slurm_patches) ----


class FakeLogger:
    def __init__(self):
        self.warnings = []

    def warning(self, text):
        self.warnings.append(text)


def outage(failures: int):
    """A status query that fails ``failures`` times, then answers; and a fake clock."""
    calls = {"n": 0}
    now = {"t": 0.0}

    async def query(command, logger):
        calls["n"] += 1
        return (None, None) if calls["n"] <= failures else ({"7": "COMPLETED", "8": "CANCELLED by 0"}, 0.01)

    async def sleep(seconds):
        now["t"] += seconds

    return query, calls, (lambda: now["t"]), sleep


def test_failed_status_queries_are_retried_until_slurm_answers():
    query, calls, clock, sleep = outage(failures=5)
    logger = FakeLogger()
    waiting = slurm_patches.waiting_query(query, max_outage=3600, retry_s=30, clock=clock, sleep=sleep)
    status, _ = asyncio.run(waiting("sacct -X --name run", logger))
    # the plugin gets the answer (it keeps its jobs), not the failure that made it drop them,
    # and a cancelled job as the state it knows (sacct adds who cancelled it)
    assert status == {"7": "COMPLETED", "8": "CANCELLED"} and calls["n"] == 6
    assert "keeping the jobs" in logger.warnings[0] and "answers again after 150 s" in logger.warnings[-1]


def test_an_outage_longer_than_allowed_stops_with_what_to_do():
    query, _, clock, sleep = outage(failures=1000)
    waiting = slurm_patches.waiting_query(query, max_outage=600, retry_s=30, clock=clock, sleep=sleep)
    with pytest.raises(slurm_patches.StatusOutage) as error:
        asyncio.run(waiting("sacct -X --name run", FakeLogger()))
    text = str(error.value)
    assert "did not report the state of this run's jobs for 10 min" in text
    assert "keep running in SLURM" in text and "run the same command" in text
    assert slurm_patches.MAX_OUTAGE_ENV in text


def test_the_installed_plugin_is_the_one_the_patch_was_written_for():
    import snakemake_executor_plugin_slurm as plugin

    assert slurm_patches.check_assumptions(plugin) == []


def test_a_plugin_that_changed_is_named_and_left_alone():
    async def query_job_status(command, logger):
        return {}, 0.0  # raises on failure instead of returning (None, None)

    class Executor:
        async def check_active_jobs(self, jobs):
            yield None

    changed = types.SimpleNamespace(__version__="3.0.0", query_job_status=query_job_status, Executor=Executor)
    problems = slurm_patches.patch_status_queries(changed)
    assert any("written for snakemake-executor-plugin-slurm 2.8.0, found 3.0.0" in p for p in problems)
    assert any("no longer calls query_job_status" in p for p in problems)
    assert changed.query_job_status is query_job_status


# ---- the wait between job-status checks (KPMS_FLOW_SLURM_STATUS_MAX_S) ----
def plugin_copy():
    """The installed plugin's Executor in a subclass, so the patch stays in this test."""
    import snakemake_executor_plugin_slurm as plugin

    return types.SimpleNamespace(Executor=type("Executor", (plugin.Executor,), {}))


def test_the_wait_between_status_checks_is_capped_where_set(monkeypatch):
    copy = plugin_copy()
    monkeypatch.setenv(slurm_patches.STATUS_INTERVAL_ENV, "5")
    assert slurm_patches.cap_status_interval(copy) == 5.0
    executor = object.__new__(copy.Executor)
    # what the plugin's check_active_jobs sets: its initial wait, then +10 s per empty check
    for wanted, kept in [(2, 2), (12, 5), (180, 5), (None, None)]:
        executor.next_seconds_between_status_checks = wanted
        assert executor._next_seconds_between_status_checks == kept


def test_without_the_setting_the_plugins_backoff_is_untouched(monkeypatch):
    copy = plugin_copy()
    monkeypatch.delenv(slurm_patches.STATUS_INTERVAL_ENV, raising=False)
    before = copy.Executor.next_seconds_between_status_checks
    assert slurm_patches.cap_status_interval(copy) is None
    assert copy.Executor.next_seconds_between_status_checks is before


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_bad_wait_setting_is_named(monkeypatch, value):
    monkeypatch.setenv(slurm_patches.STATUS_INTERVAL_ENV, value)
    with pytest.raises(ValueError, match=f"KPMS_FLOW_SLURM_STATUS_MAX_S must be a positive number of seconds, got '{value}'"):
        slurm_patches.cap_status_interval(plugin_copy())
