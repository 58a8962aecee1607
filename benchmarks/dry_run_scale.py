"""How the dry run scales with the number of sessions, and what adding one session costs.

    .venv/bin/python benchmarks/dry_run_scale.py [--sessions 1000 [N ...]] [--repeats 3] [--keep DIR]

In a temporary working directory: N small synthetic DeepLabCut sessions (one file written
with kpms_flow.demo, hard-linked N times: the dry run only looks at existence and mtimes),
a sessions table (all train: true but the last, as in the demo) and the demo's config without
ground truth (and without the kappa search, where the config has one). Then it times
``snakemake -n`` (median of --repeats runs) for:

  fresh       nothing built yet: every job is scheduled
  complete    every output present, newer than its inputs: nothing to be done
  add_one     complete, plus one appended train: false session

The complete state is made without running anything: the fresh dry run's job listing gives
every job's inputs and outputs; each output is created empty with an mtime one second later
than the latest of its job's inputs (a topological order, as a real run leaves them), all
newer than the rule scripts (Snakemake reruns a script rule whose script is newer than its
outputs). It has
no provenance records (.snakemake/metadata), so the params/input/code triggers cannot fire: the
job counts are those of the mtime/missing-file triggers, which is what adding a session
trips (the provenance side is covered by tests/test_incremental.py on the real demo).

It also times the two per-invocation steps of common.smk that grow with N: reading the
sessions table and validating it against workflow/schemas/sessions.schema.yaml.

Prints a table and writes benchmarks/results/dry_run_scale.tsv.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from kpms_flow.dryrun import job_counts  # noqa: E402
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
RESULTS = ROOT / "benchmarks" / "results" / "dry_run_scale.tsv"
N_FRAMES = 300  # the demo's qa.min_frames


def write_pose(path: Path) -> None:
    from kpms_flow.demo import dlc_dataframe, sample_true_model, simulate_session

    sim = simulate_session(sample_true_model(0), np.random.default_rng(0), N_FRAMES)
    path.parent.mkdir(parents=True, exist_ok=True)
    dlc_dataframe(sim["coordinates"], sim["likelihood"]).to_hdf(
        path, key="df_with_missing", mode="w", format="table"
    )


def link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy(source, target)


def session_row(i: int, train: bool) -> dict:
    name = f"s{i:05d}"
    return {
        "session": name,
        "path": f"pose/{name}DLC_resnet50_benchSep1shuffle1_1000.h5",
        "format": "deeplabcut",
        "animal": "",
        "fps": "30",
        "group": "AB"[i % 2],
        "train": "true" if train else "false",
        "video": "",
    }


def setup(workdir: Path, n_sessions: int) -> Path:
    template = workdir / "pose" / "template.h5"
    write_pose(template)
    rows = [session_row(i, train=i < n_sessions - 1) for i in range(n_sessions)]
    for row in rows:
        link(template, workdir / row["path"])
    (workdir / "config").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(workdir / "config" / "sessions.tsv", sep="\t", index=False)
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config.update(sessions="config/sessions.tsv", ground_truth_dir=None)
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    if "kappa_search" in schema.get("properties", {}):
        config["kappa_search"] = {"enabled": False}
    path = workdir / "config" / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dry_run(workdir: Path, config: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system: what the wall time is on an idle machine; the
    wall time grows when other work shares the cores) of one ``snakemake -n``, its output."""
    cmd = [
        SNAKEMAKE,
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        "2",
        "--configfile",
        str(config),
        "-n",
    ]
    return timed_dry_run(cmd, workdir)


def timed_dry_run(cmd: list[str], workdir: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds of one ``snakemake -n`` command line run in workdir, its output."""
    cpu, start = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - start, children_cpu() - cpu
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"snakemake -n failed ({proc.returncode}):\n{text[-5000:]}")
    return elapsed, cpu, text


def jobs_listed(text: str) -> list[tuple[str, list[str], list[str]]]:
    """(rule, inputs, outputs) of every job block of a dry run's printout."""
    jobs, current = [], None
    for line in text.splitlines():
        stripped = line.strip()
        match = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", stripped)
        if match:
            current = [match.group(1), [], []]
            jobs.append(current)
        elif current is not None and stripped.startswith(("input:", "output:")):
            key, _, files = stripped.partition(":")
            current[1 if key == "input" else 2] += [
                f.strip() for f in files.split(",") if f.strip()
            ]
    return [tuple(job) for job in jobs]


def complete(workdir: Path, text: str) -> int:
    """Create every job's outputs, each newer than its inputs; return the number of files."""
    jobs = jobs_listed(text)
    producer = {out: i for i, (_, _, outs) in enumerate(jobs) for out in outs}
    level: dict[int, int] = {}

    def job_level(i: int) -> int:  # longest chain of producing jobs above job i
        if i not in level:
            stack = [i]
            while stack:
                j = stack[-1]
                deps = [producer[f] for f in jobs[j][1] if f in producer and producer[f] != j]
                todo = [d for d in deps if d not in level]
                if todo:
                    stack += todo
                    continue
                level[j] = 1 + max((level[d] for d in deps), default=0)
                stack.pop()
        return level[i]

    # after the rule scripts' mtimes (Snakemake reruns a script rule whose script is newer
    # than its outputs), in the past
    base = time.time() - 30
    created = 0
    for i, (_, _, outputs) in enumerate(jobs):
        stamp = base + job_level(i)
        for out in outputs:
            path = workdir / out
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            os.utime(path, (stamp, stamp))
            created += 1
    # the inputs nobody produces (pose files, sessions table) are older than everything
    for _, inputs, _ in jobs:
        for f in inputs:
            if f not in producer and (workdir / f).exists():
                os.utime(workdir / f, (base - 1, base - 1), follow_symlinks=True)
    return created


def add_session(workdir: Path, n_sessions: int) -> None:
    row = session_row(n_sessions, train=False)
    shutil.copy(workdir / "pose" / "template.h5", workdir / row["path"])
    with open(workdir / "config" / "sessions.tsv", "a") as table:
        table.write("\t".join(row.values()) + "\n")


def time_table_steps(workdir: Path, repeats: int) -> dict[str, list[float]]:
    from snakemake.utils import validate
    from kpms_flow.sessions import read_sessions_table

    times = {"read_sessions_table": ([], []), "validate_sessions": ([], [])}

    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), cpu()
        table = read_sessions_table(workdir / "config" / "sessions.tsv")
        times["read_sessions_table"][0].append(time.perf_counter() - start)
        times["read_sessions_table"][1].append(cpu() - start_cpu)
        start, start_cpu = time.perf_counter(), cpu()
        validate(table, str(ROOT / "workflow" / "schemas" / "sessions.schema.yaml"))
        times["validate_sessions"][0].append(time.perf_counter() - start)
        times["validate_sessions"][1].append(cpu() - start_cpu)
    return times


def run_scale(workdir: Path, n: int, repeats: int) -> list[dict]:
    rows = []

    def measure(scenario: str, sessions: int) -> str:
        times, cpus, text = [], [], ""
        for _ in range(repeats):
            elapsed, cpu, text = dry_run(workdir, config)
            times.append(elapsed)
            cpus.append(cpu)
        jobs = job_counts(text)
        rows.append(
            {
                "scenario": scenario,
                "sessions": sessions,
                "jobs": sum(jobs.values()),
                "median_s": statistics.median(times),
                "median_cpu_s": statistics.median(cpus),
                "runs_s": " ".join(f"{t:.2f}" for t in times),
                "load1": os.getloadavg()[0],
                "job_stats": " ".join(f"{k}={v}" for k, v in jobs.items()) or "-",
            }
        )
        print(
            f"{n} sessions, {scenario}: {rows[-1]['median_s']:.2f} s wall, "
            f"{rows[-1]['median_cpu_s']:.2f} s CPU, {rows[-1]['jobs']} jobs "
            f"(load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        return text

    config = setup(workdir, n)
    for step, (times, cpus) in time_table_steps(workdir, repeats).items():
        rows.append(
            {
                "scenario": step,
                "sessions": n,
                "jobs": 0,
                "median_s": statistics.median(times),
                "median_cpu_s": statistics.median(cpus),
                "runs_s": " ".join(f"{t:.2f}" for t in times),
                "load1": os.getloadavg()[0],
                "job_stats": "-",
            }
        )
    fresh = measure("fresh", n)
    complete(workdir, fresh)
    measure("complete", n)
    if rows[-1]["jobs"]:
        raise SystemExit(f"the completed state still has jobs: {rows[-1]['job_stats']}")
    add_session(workdir, n)
    measure("add_one", n + 1)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sessions",
        type=int,
        nargs="+",
        default=[1000],
        help="session counts to measure (default: 1000)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="dry runs per measurement")
    parser.add_argument("--keep", type=Path, help="keep the working directories under this folder")
    args = parser.parse_args(argv)

    rows = []
    for n in args.sessions:
        if args.keep:
            workdir = (args.keep / f"sessions_{n}").resolve()
            if workdir.exists():
                raise SystemExit(f"{workdir} exists; --keep wants new directories")
            workdir.mkdir(parents=True)
            rows += run_scale(workdir, n, args.repeats)
        else:
            with tempfile.TemporaryDirectory(prefix="kpms_flow_dry_run_scale_") as scratch:
                rows += run_scale(Path(scratch), n, args.repeats)

    write_results(rows, RESULTS)
    return 0


def write_results(rows: list[dict], path: Path) -> None:
    """Print the rows as a table and write them to path (TSV)."""
    table = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, float_format="%.3f")
    with pd.option_context("display.max_colwidth", 80, "display.width", 250):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    raise SystemExit(main())
