"""Helpers the workflow benchmarks share: a demo-like project in a scratch directory, timed
Snakemake runs, Snakemake's benchmark files, and the machine's load."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PROJECT_CACHE = str(ROOT / ".snakemake" / "kpms-flow-jax-cache")
sys.path.insert(0, str(ROOT / "scripts"))


def load_average() -> str:
    """The 1, 5 and 15 min load averages, as `uptime` prints them (2 cores here)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_project(workdir: Path, sessions: pd.DataFrame | None = None, **overrides) -> Path:
    """config/demo.yaml with ``overrides`` (and a sessions table, or the demo's) in workdir."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config.update(overrides)
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    table = workdir / "config" / "sessions.tsv"
    if sessions is None:
        sessions = pd.read_csv(ROOT / "config" / "demo_sessions.tsv", sep="\t", keep_default_na=False)
    sessions.to_csv(table, sep="\t", index=False)
    config["sessions"] = "config/sessions.tsv"
    path = workdir / "config" / "benchmark.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def synthetic_sessions(workdir: Path, n_sessions: int, n_frames: int, n_heldout: int = 0):
    """kpms_flow.demo's sessions (true states in data/ground_truth) and their table."""
    from kpms_flow.demo import generate_demo

    table = generate_demo(workdir / "data", n_sessions=n_sessions, n_frames=n_frames, n_heldout=n_heldout)
    table["path"] = [str(Path(p).resolve()) for p in table["path"]]
    return table


def run_snakemake(workdir: Path, config: Path, *targets, cache=PROJECT_CACHE, extra=(), env=None):
    """Run the project's Snakefile in workdir on 2 cores (``env``: the environment, default
    this process's).

    Returns the wall time (s), Snakemake's log (stderr) and the CPU time (user + system, s)
    of Snakemake and every process it started (the kernel's count for waited-for children,
    exact, unlike the sampled ``cpu_time`` of benchmark files).
    """
    # Targets first: --resources and --configfile take several values.
    cmd = [SNAKEMAKE, *targets, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2"]
    cmd += ["--resources", "gpu=2", "--configfile", str(config), *extra]
    env = dict(env or os.environ, KPMS_FLOW_JAX_CACHE=cache)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake failed in {workdir}:\n{proc.stderr[-6000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, proc.stderr, cpu


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def job_spans(log: str) -> pd.DataFrame:
    """Each job's rule, start and end (s since the first job, 1 s resolution) from
    Snakemake's log: covers rules without a benchmark file too."""
    from datetime import datetime

    stamp, rule, starts, rows = None, None, {}, []
    for line in log.splitlines():
        line = line.strip()
        if match := _STAMP.match(line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif line.startswith(("rule ", "localrule ", "checkpoint ", "localcheckpoint ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("jobid:") and rule is not None:
            starts[line.split()[1]] = (rule, stamp)
            rule = None
        elif line.startswith("Finished jobid:"):
            job = line.split()[2]
            if job in starts:
                name, begun = starts[job]
                rows.append({"rule": name, "start": begun, "end": stamp})
    table = pd.DataFrame(rows, columns=["rule", "start", "end"])
    if len(table):
        origin = table["start"].min()
        table["start"] = (table["start"] - origin).dt.total_seconds()
        table["end"] = (table["end"] - origin).dt.total_seconds()
        table["s"] = table["end"] - table["start"]
    return table


def benchmark_rows(workdir: Path) -> pd.DataFrame:
    """Every Snakemake benchmark file under results/benchmarks: one row per job."""
    rows = []
    base = workdir / "results" / "benchmarks"
    for path in sorted(base.rglob("*.tsv")):
        row = pd.read_csv(path, sep="\t").iloc[-1].to_dict()
        job = str(path.relative_to(base).with_suffix(""))
        rows.append({"job": job, "rule": job.split("/")[0], **row})
    return pd.DataFrame(rows)
