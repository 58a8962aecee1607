"""Safety checks for runs on a SLURM cluster.

When the Snakemake process dies (the login node reboots, the SSH session is killed), the
jobs it submitted keep running in SLURM, and Snakemake's own record of them is gone. A
second ``snakemake`` in the same working directory would then submit those jobs again: two
fits writing one work folder, twice the GPU hours. snakemake-executor-plugin-slurm 2.8 does
not look for them (it names its jobs by a per-run id), so the workflow does, before it
submits anything: a job that SLURM still lists with this working directory and the plugin's
``rule_``/``group_`` comment belongs to an earlier run of this workflow.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# squeue fields: job id, state, working directory, comment (the plugin's rule_<rule>...).
SQUEUE_FORMAT = "%i|%T|%Z|%k"
# States in which a job may still run and write outputs.
ACTIVE_STATES = {
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED",
    "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT",
}


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    state: str
    comment: str

    @property
    def rule(self) -> str:
        """The rule (or group) the plugin's comment names: ``rule_fit_arhmm_wildcards_...``."""
        name = self.comment.split("_wildcards_")[0]
        return name.removeprefix("rule_")


def earlier_jobs(squeue_output: str, workdir: Path) -> list[QueuedJob]:
    """Jobs in ``squeue --format=SQUEUE_FORMAT`` output that an earlier run of the workflow
    in ``workdir`` submitted and that may still write its outputs."""
    workdir = Path(workdir).resolve()
    jobs = []
    for line in squeue_output.splitlines():
        fields = line.strip().split("|", 3)
        if len(fields) != 4:
            continue
        job_id, state, job_dir, comment = fields
        if state not in ACTIVE_STATES or not comment.startswith(("rule_", "group_")):
            continue
        if Path(job_dir).resolve() != workdir:
            continue
        jobs.append(QueuedJob(job_id, state, comment))
    return jobs


def earlier_jobs_message(jobs: list[QueuedJob], workdir: Path) -> str:
    listed = "\n".join(f"  {job.job_id}  {job.state:<10} {job.rule}" for job in jobs)
    ids = " ".join(job.job_id for job in jobs)
    return (
        f"{len(jobs)} SLURM job(s) submitted by an earlier run of this workflow in {workdir} "
        f"are still queued or running:\n{listed}\n"
        "Submitting now would compute their outputs a second time (for a fit: two jobs "
        "writing one work folder). Either wait until they end (squeue --me) or cancel them "
        f"(scancel {ids}), then run the same command again: finished jobs are not rerun and "
        "a cancelled fit resumes from its last saved iteration."
    )


def check_no_earlier_jobs(workdir: Path) -> None:
    """Raise RuntimeError naming the jobs if an earlier run's jobs are still in SLURM.

    Silent where squeue is missing or fails (not a SLURM machine, controller unreachable:
    the executor reports that itself).
    """
    squeue = shutil.which("squeue")
    if squeue is None:
        return
    try:
        proc = subprocess.run(
            [squeue, "--me", "--noheader", "--states=all", f"--format={SQUEUE_FORMAT}"],
            capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return
    if proc.returncode != 0:
        return
    jobs = earlier_jobs(proc.stdout, workdir)
    if jobs:
        raise RuntimeError(earlier_jobs_message(jobs, Path(workdir).resolve()))
