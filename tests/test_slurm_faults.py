"""A week of GPU time survives the cluster (issue 21).

One long fit (the demo's final full model, FULL_MODEL_ITERS sweeps) runs through the slurm
profile on the real one-node cluster of tests/slurm/cluster.sh and meets, in turn, what
shared clusters do to jobs:

1. its time limit (lowered to 1 minute while it runs): Snakemake's retry asks the plan for
   twice the time, and the fit resumes;
2. ``scancel``: the retry resubmits it, and it resumes;
3. preemption with requeue (``scontrol requeue``), during an accounting outage (slurmdbd
   stopped): SLURM starts it again under the same job id, it resumes, and Snakemake keeps
   following it (it submits the next job, the reindexing, once the fit ends);
4. the Snakemake process killed (a login node rebooting) while that next job runs: the
   same command refuses to submit it a second time and names it; once it has ended, the
   same command finishes without running anything again.

Each fault strikes right after a save, with the fitting process held still (SIGSTOP): on an
idle machine the demo's sweeps take a fraction of a second, and SLURM enforces a time limit
up to a minute late. The fit ends with the uninterrupted fit's labels. What each fault cost (the last save before
it, where the fit resumed, the sweeps run again, the seconds from the fault to the resumed
fit) is printed (``pytest -s``) and written to ``<tmp>/faults.tsv``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SLURM_CLUSTER, SNAKEMAKE
from fit_interruptions import LOG, TARGET, final_labels, longer_fit, recorded

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

PROFILE = ROOT / "profiles" / "slurm"
FIT_COMMENT = "rule_fit_full_model"
NEXT_COMMENT = "rule_reindex_syllables"
NEXT_TARGET = "results/model/checkpoint.h5"  # the job after the fit (one restart: no selection)
NEXT_OUTPUTS = [NEXT_TARGET, "results/model/syllable_order.tsv"]
ARHMM_TARGET = "results/fits/restart_0/arhmm/checkpoint.h5"
OUTAGE_MIN_S = 45  # slurmdbd stays down at least this long (several of the plugin's status checks)


def squeue_jobs(env, comment: str = FIT_COMMENT) -> dict[str, str]:
    """Job id -> state of one rule's SLURM jobs (finished ones included)."""
    out = subprocess.run(
        ["squeue", "--me", "--noheader", "--states=all", "--format=%i|%T|%k"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    jobs = {}
    for line in out.splitlines():
        job, state, line_comment = line.strip().split("|", 2)
        if line_comment.startswith(comment):
            jobs[job] = state
    return jobs


def sacct_jobs(env) -> pd.DataFrame:
    """Every record of the SLURM jobs, requeued runs included (sacct --duplicates)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--duplicates", "-a", "--starttime=now-7days", "-o", "JobID,State,Timelimit,Comment"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    rows = [line.split("|", 3) for line in out.splitlines() if line]
    return pd.DataFrame(rows, columns=["job", "state", "timelimit", "comment"])


class FaultDriver:
    """The run under test and the faults done to it, with what each one cost."""

    def __init__(self, workdir: Path, config: Path, env: dict, state_dir: Path):
        self.workdir, self.config, self.env, self.state_dir = workdir, config, env, state_dir
        self.records: list[dict] = []
        self.proc: subprocess.Popen | None = None

    def command(self, *extra) -> list[str]:
        return [
            "timeout", "-k", "30", "1200",  # the plugin can hang past SIGTERM (notes)
            SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(self.workdir),
            "--profile", str(PROFILE), "--configfile", str(self.config), "--cores", "2",
            "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
            *extra, "--", TARGET, NEXT_TARGET,
        ]

    def start(self):
        self.started = time.time() - 1  # log stamps have whole seconds
        self.output = self.workdir / "snakemake-A.log"
        self.proc = subprocess.Popen(
            self.command(), cwd=self.workdir, env=self.env, stdout=self.output.open("w"),
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )

    def wait(self, condition, what: str, timeout: float = 600, need_run: bool = True):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if condition():
                return
            if need_run and self.proc.poll() is not None:
                raise AssertionError(
                    f"Snakemake ended ({self.proc.returncode}) before {what}:\n"
                    f"{self.output.read_text()[-5000:]}"
                )
            time.sleep(0.3)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def log(self) -> str:
        path = self.workdir / LOG
        return path.read_text() if path.exists() else ""

    def running_job(self, exclude=(), comment=FIT_COMMENT, what="a running fit job") -> str:
        found = {}

        def new_running():
            jobs = {j: s for j, s in squeue_jobs(self.env, comment).items() if j not in exclude}
            found.update({j: s for j, s in jobs.items() if s == "RUNNING"})
            return bool(found)

        self.wait(new_running, f"{what} (other than {sorted(exclude)})")
        return min(found, key=int)

    def resumes(self) -> list[tuple[float, int]]:
        """(time, iteration) of each "starting / resuming ... at iteration N" line that this
        run's fit wrote (the log holds the current attempt only: a retry writes it anew;
        before the first, the copied reference run's)."""
        found = []
        for line in self.log().splitlines():
            match = re.match(r"(\S+ \S+),\d+ INFO (starting|resuming) \S+ at iteration (\d+)", line)
            if match:
                stamp = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
                # A fresh fit holds its starting state as a snapshot: its first save of a
                # sweep is the next iteration, the one a fault must wait for.
                iteration = int(match.group(3)) + (match.group(2) == "starting")
                if stamp >= self.started:
                    found.append((stamp, iteration))
        return found

    def fit_process(self) -> int:
        """The running attempt's fitting process (the watchdog's child; same machine here)."""
        pids = re.findall(r"fit_full_model: process (\d+) started", self.log())
        return int(pids[-1])

    def fault(self, name: str, job: str, act, attempt=None) -> tuple:
        """Do ``act`` right after a save of the running attempt (whose resume line is
        ``attempt``; None: the first one); wait until the fit resumes again; record what it
        cost. Returns the new attempt's resume line."""
        if attempt is None:
            attempt = self.next_resume(None, "the fit to start")
        self.wait(lambda: max(recorded(self.workdir), default=0) >= attempt[1],
                  f"a save at iteration {attempt[1]} or later")
        # Freeze the fitting process (as a node that stops answering) so the fault strikes a
        # known state: on an idle machine the demo's sweeps take a fraction of a second, and
        # SLURM acts on a time limit only up to a minute later.
        os.kill(self.fit_process(), signal.SIGSTOP)
        saved = max(recorded(self.workdir))
        hit = time.time()
        act()
        resumed = self.next_resume(attempt, f"the fit to resume after {name}")
        self.records.append({
            "fault": name, "slurm_job": job, "saved_when_hit": saved, "resumed_at": resumed[1],
            "seconds_to_resume": round(time.time() - hit, 1),
        })
        return resumed

    def next_resume(self, after, what: str) -> tuple[float, int]:
        """The fit's latest resume line once it is not ``after``. The log is read once per
        look: a new attempt writes it anew, so it can be empty between two reads (a suite
        run failed on that)."""
        found = {}

        def resumed() -> bool:
            lines = self.resumes()
            if lines and lines[-1] != after:
                found["line"] = lines[-1]
            return "line" in found

        self.wait(resumed, what)
        return found["line"]

    def cluster(self, action: str):
        subprocess.run([str(SLURM_CLUSTER), action, str(self.state_dir)], check=True, timeout=120,
                       env=self.env, capture_output=True)

    def scontrol(self, *args):
        subprocess.run(["scontrol", *args], env=self.env, check=True, timeout=60)


# demo_reference before slurm_cluster: its build may need the one test cluster itself.
@pytest.fixture(scope="module")
def faulted_run(demo_reference, slurm_cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_faults")
    config = longer_fit(demo_reference, workdir)
    env = dict(slurm_cluster, KPMS_FLOW_JAX_CACHE=str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    state_dir = Path(slurm_cluster["SLURM_CONF"]).parents[1]
    run = FaultDriver(workdir, config, env, state_dir)
    outcome: dict = {"workdir": workdir}
    # The job after the fit runs here for the first time, as in a fresh project: its copied
    # record (from the reference run's other settings) would make Snakemake run it again
    # after its orphaned run (README, "When the cluster fails").
    subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--configfile", str(config),
                    "--cleanup-metadata", *NEXT_OUTPUTS], cwd=workdir, env=env, capture_output=True, check=True)
    # The AR-HMM the long fit starts from, fitted here first: on the cluster, the faults' run
    # submits only the long fit's attempts and the job after it.
    subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--configfile", str(config),
                    "--cores", "2", "--resources", "gpu=1", "--", ARHMM_TARGET],
                   cwd=workdir, env=env, capture_output=True, check=True)
    run.start()
    try:
        # 1. The time limit: lowered to 1 minute while attempt 1 runs (as a too-small
        #    runtime would); SLURM ends it within its next time-limit check.
        job1 = run.running_job()
        attempt2 = run.fault("time limit", job1, lambda: run.scontrol("update", f"JobId={job1}", "TimeLimit=1"))
        # 2. scancel of attempt 2.
        job2 = run.running_job(exclude={job1})
        attempt3 = run.fault("scancel", job2, lambda: subprocess.run(["scancel", job2], env=env, check=True),
                             attempt2)
        # 3. Preemption during an accounting outage: slurmdbd goes down, the running attempt
        #    is requeued; slurmdbd comes back once the fit has resumed (and OUTAGE_MIN_S passed).
        job3 = run.running_job(exclude={job1, job2})
        outage = {}

        def outage_then_requeue():
            outage["start"] = time.time()
            run.cluster("stop-dbd")
            run.scontrol("requeue", job3)
            # SLURM holds a requeued job for 2 minutes (BeginTime) once it is pending again; no
            # need to wait for that here.
            run.wait(lambda: squeue_jobs(env).get(job3) == "PENDING", "the requeued job to pend")
            run.scontrol("update", f"JobId={job3}", "StartTime=now")

        run.fault("requeue during a slurmdbd outage", job3, outage_then_requeue, attempt3)
        time.sleep(max(0.0, OUTAGE_MIN_S - (time.time() - outage["start"])))
        outage_s = time.time() - outage["start"]
        assert run.proc.poll() is None, "Snakemake ended during the accounting outage"
        run.cluster("start-dbd")
        outcome["outage_s"] = round(outage_s)
        # 4. Snakemake must have followed the fit through the outage: it submits the
        #    reindexing once the fit ends. Its process is then killed while that job runs
        #    (held still by SLURM, so it cannot end before the next command looks).
        job4 = run.running_job(comment=NEXT_COMMENT, what="the job after the fit (Snakemake lost "
                               "track of the fit if it never comes)")
        run.scontrol("suspend", job4)
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait(timeout=60)
        subprocess.run(run.command("--unlock"), cwd=workdir, env=env, capture_output=True, check=True)
        outcome["second"] = subprocess.run(run.command(), cwd=workdir, env=env, capture_output=True, text=True)
        (workdir / "snakemake-B.log").write_text(outcome["second"].stdout + outcome["second"].stderr)
        outcome["jobs_after_second"] = set(squeue_jobs(env, "rule_"))
        run.scontrol("resume", job4)
        run.wait(lambda: squeue_jobs(env, NEXT_COMMENT)[job4] not in ("RUNNING", "SUSPENDED", "PENDING"),
                 "the orphaned job to end", need_run=False)
        started = time.time()
        outcome["third"] = subprocess.run(run.command(), cwd=workdir, env=env, capture_output=True, text=True)
        (workdir / "snakemake-C.log").write_text(outcome["third"].stdout + outcome["third"].stderr)
        outcome["third_s"] = round(time.time() - started)
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
        subprocess.run(["scancel", "--me"], env=env)
    outcome.update(jobs=(job1, job2, job3, job4), records=run.records, sacct=sacct_jobs(env), log=run.log())
    table = pd.DataFrame(run.records)
    table.to_csv(workdir / "faults.tsv", sep="\t", index=False)
    print(f"\n{table.to_string(index=False)}\nslurmdbd down {outage_s:.0f} s; "
          f"the rerun after the orphaned job ended took {outcome['third_s']} s")
    return outcome


def test_each_fault_resumes_from_the_last_save(faulted_run):
    records = faulted_run["records"]
    assert [r["fault"] for r in records] == ["time limit", "scancel", "requeue during a slurmdbd outage"]
    for record in records:
        # Each fault struck right after a save (the fit held still): nothing saved is lost and
        # the fit goes on at the next sweep; only the sweep in progress was run again.
        assert record["resumed_at"] == record["saved_when_hit"] + 1, record
    assert not re.search(r"starting \S+checkpoint\.h5 at iteration", faulted_run["log"])


def test_time_limit_and_scancel_are_retried_with_more_time(faulted_run):
    sacct = faulted_run["sacct"]
    job1, job2, job3, _ = faulted_run["jobs"]
    states = sacct.groupby("job")["state"].apply(set)
    assert states[job1] == {"TIMEOUT"}
    assert {s.split()[0] for s in states[job2]} == {"CANCELLED"}
    assert "REQUEUED" in states[job3] and "COMPLETED" in states[job3], states[job3]

    def minutes(limit: str) -> int:
        h, m, _ = (int(x) for x in limit.split("-")[-1].split(":"))
        return h * 60 + m

    # Each retry asks the plan for more time (resources x attempt, rounded up to minutes);
    # attempt 1 shows the lowered limit, so compare attempts 2 and 3.
    limit2 = minutes(sacct.loc[sacct["job"] == job2, "timelimit"].iloc[0])
    limit3 = minutes(sacct.loc[sacct["job"] == job3, "timelimit"].iloc[-1])
    assert limit2 > 20 and abs(limit3 / limit2 - 1.5) < 0.05, (limit2, limit3)


def test_snakemake_restarted_while_its_job_runs_does_not_submit_it_twice(faulted_run):
    second = faulted_run["second"]
    orphan = faulted_run["jobs"][3]
    assert second.returncode != 0
    text = second.stdout + second.stderr
    assert "still queued or running" in text and orphan in text and "reindex_syllables" in text, text[-3000:]
    assert f"scancel {orphan}" in text
    # nothing new was submitted: the queue held the fit's three attempts and the orphan only
    assert faulted_run["jobs_after_second"] == set(faulted_run["jobs"])


def test_after_the_orphan_ended_the_same_command_finishes_without_rerunning(faulted_run, uninterrupted):
    third = faulted_run["third"]
    assert third.returncode == 0, third.stderr[-5000:]
    assert set(faulted_run["sacct"]["job"]) == set(faulted_run["jobs"])
    last_iteration, reference_labels = uninterrupted
    iteration, labels = final_labels(faulted_run["workdir"])
    assert iteration == last_iteration
    np.testing.assert_array_equal(labels, reference_labels)
