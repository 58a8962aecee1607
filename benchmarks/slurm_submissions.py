"""How many sbatch submissions N sessions cost on SLURM: the profile's groups, the plugin's
job arrays, or one submission per job.

    .venv/bin/python benchmarks/slurm_submissions.py [--sessions 20] [--modes groups arrays plain]
        [--jobs N] [--timeout S]

Root only: it starts the one-node test cluster of tests/slurm/cluster.sh in a temporary
folder (and stops it). For each mode, in a fresh working directory with N small synthetic
sessions (benchmarks/dry_run_scale.py's setup: one file hard-linked N times), it runs the
per-session stage through ``--profile profiles/slurm`` up to ``results/qa/summary.tsv``
(prepare_session per session; training_set and qa_summary are local rules):

  groups   the profile as it is: per-session jobs bundled (group `sessions`, 50 per job)
  arrays   the profile without groups, prepare_session as job arrays
           (``--slurm-array-jobs``, snakemake-executor-plugin-slurm 2.6+)
  plain    the profile without groups: one submission per job

and counts, from sacct, the submissions (distinct job ids; an array is one), the array
tasks, and the wall time of the run. One run; the machine is shared, so compare the
modes, not the seconds. Writes benchmarks/results/slurm_submissions.tsv.

``--jobs N`` replaces the profile's ``jobs: 100`` (Snakemake's limit on jobs queued at once):
N below the number of sessions models a project larger than that limit (20 sessions with
``--jobs 5`` stand for 400 sessions with 100), where snakemake-executor-plugin-slurm's issue
473 reports that array mode stops submitting. A run still going after ``--timeout`` seconds
is killed and recorded as hung, not completed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from dry_run_scale import setup  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
RESULTS = ROOT / "benchmarks" / "results" / "slurm_submissions.tsv"
TARGET = "results/qa/summary.tsv"


def profile_copy(folder: Path, groups: bool) -> Path:
    """profiles/slurm, with or without its groups (a profile cannot be undone from the CLI)."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    if not groups:
        profile.pop("groups", None)
        profile.pop("group-components", None)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def sacct_jobs(env, since: str) -> pd.DataFrame:
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", f"--starttime={since}", "-o", "JobID,State,Comment"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    rows = [line.split("|", 2) for line in out.splitlines() if line]
    return pd.DataFrame(rows, columns=["job", "state", "comment"])


def run_mode(
    mode: str, n_sessions: int, env: dict, scratch: Path, jobs_limit: int | None, timeout_s: int
) -> dict:
    workdir = scratch / mode
    workdir.mkdir()
    config = setup(workdir, n_sessions)
    profile = profile_copy(scratch / f"profile-{mode}", groups=mode == "groups")
    extra = ["--slurm-array-jobs=prepare_session"] if mode == "arrays" else []
    if jobs_limit is not None:
        extra += ["--jobs", str(jobs_limit)]
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1)
    cmd = [
        "timeout", "-k", "30", str(timeout_s), SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
        "--profile", str(profile), "--configfile", str(config), "--cores", "2",
        "--slurm-init-seconds-before-status-checks", "2", *extra, "--", TARGET,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    # timeout(1) exits 124, or dies by the KILL it sends when the run ignores TERM
    hung = proc.returncode in (124, 137, -9)
    if proc.returncode != 0 and not hung:
        raise SystemExit(f"{mode}: snakemake failed ({proc.returncode}):\n{proc.stderr[-5000:]}")
    jobs = sacct_jobs(env, since)
    parents = jobs["job"].str.split("_").str[0]
    return {
        "mode": mode,
        "sessions": n_sessions,
        "submissions": parents.nunique(),
        "array_tasks": int(jobs["job"].str.contains("_").sum()),
        "jobs_limit": jobs_limit if jobs_limit is not None else "profile",
        "hung": hung,
        "completed": bool(not hung and (jobs["state"] == "COMPLETED").all()),
        "sacct_rows_completed": int((jobs["state"] == "COMPLETED").sum()),
        "wall_s": round(wall, 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--modes", nargs="+", default=["groups", "arrays", "plain"])
    parser.add_argument("--jobs", type=int, default=None, help="instead of the profile's jobs")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds before a run is hung")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("the test cluster needs root")
    subprocess.run([str(CLUSTER), "install"], check=True)
    with tempfile.TemporaryDirectory(prefix="kpms-flow-slurm-bench-") as tmp:
        scratch = Path(tmp)
        state = scratch / "cluster"
        subprocess.run([str(CLUSTER), "start", str(state)], check=True, capture_output=True)
        env = dict(os.environ, SLURM_CONF=str(state / "etc" / "slurm.conf"))
        try:
            rows = [
                run_mode(mode, args.sessions, env, scratch, args.jobs, args.timeout)
                for mode in args.modes
            ]
        finally:
            subprocess.run([str(CLUSTER), "stop", str(state)], check=False)
    table = pd.DataFrame(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS, sep="\t", index=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
