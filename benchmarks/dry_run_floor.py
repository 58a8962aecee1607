"""Snakemake's own dry-run cost for kpms-flow's DAG shape, without kpms-flow's code.

    .venv/bin/python benchmarks/dry_run_floor.py [--sessions 1000 [N ...]] [--batch 1 [B ...]] [--repeats 3]

dry_run_scale.py times the real workflow. This one writes a Snakefile with the same
per-session shape and nothing else: per session a ``prepare_session`` job (1 input, 4
outputs), an ``export_session`` job (5 inputs, 2 outputs), ``apply_model`` for a held-out
session, each with ``log:``, ``benchmark:``, ``conda:`` and ``script:`` like the project's,
and the same references to each session's files in the summary rules' inputs (``all`` 3,
``provenance`` 2, the QA summary, the run summary; a training session's clean file and QA
table in the manifest, the training set, the training data and a plot; a held-out session's
labels in the group statistics). tests/test_workflow.py checks that each session's files
appear in the same rules as often as in the real workflow's dry run
(``session_references``). No params, no resource functions, no config schema, no sessions-table
validation: what is left is Snakemake's work for this many jobs and files, the floor under
any change to kpms-flow's own code.

``--batch B`` writes the same files, B sessions per ``prepare`` and ``export`` job: what
fewer, larger jobs would buy (and what they cost: adding a session reruns its batch).
``--batch 0`` is the least any per-session workflow can be: one job per session (its source
in, one table out, a log) and one summary over the tables.

The three states are dry_run_scale.py's (fresh, complete, add_one). Prints a table and
writes benchmarks/results/dry_run_floor.tsv.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dry_run_scale import (  # noqa: E402
    ROOT,
    SNAKEMAKE,
    complete,
    jobs_listed,
    timed_dry_run,
    write_results,
)

sys.path.insert(0, str(ROOT / "scripts"))
from kpms_flow.dryrun import job_counts  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "dry_run_floor.tsv"

# The per-session files and their consumers, as in kpms-flow's workflow (the fresh dry run's
# listing: `snakemake -n`, one session's name counted in every job block).
SNAKEFILE = r'''
import csv

with open("sessions.tsv") as table:
    ROWS = list(csv.DictReader(table, delimiter="\t"))
SESSIONS = [r["session"] for r in ROWS]
TRAIN = [r["session"] for r in ROWS if r["train"] == "true"]
APPLY = [r["session"] for r in ROWS if r["train"] != "true"]
BATCH = @BATCH@
TRAINED = frozenset(TRAIN)
BATCHES = {s: i // BATCH for i, s in enumerate(SESSIONS)}
MEMBERS = {}
for s, b in BATCHES.items():
    MEMBERS.setdefault(b, []).append(s)


def per_session(pattern, sessions=SESSIONS):
    return expand(pattern, session=sessions)


def batch_export_inputs(members):
    return (
        ["results/extract/results.h5"] * any(s in TRAINED for s in members)
        + [f"results/apply/{s}.h5" for s in members if s not in TRAINED]
        + per_session("results/sessions/{session}/clean.h5", members)
        + per_session("pose/{session}.h5", members)
        + per_session("results/keypoints/{session}.h5", members)
        + ["results/provenance/model.json"]
    )


rule all:
    input:
        "results/summary.txt",
        "results/provenance.json",
        "results/qa/summary.tsv",
        "results/trajectories.png",
        "results/groups/stats_df.tsv",
        per_session("results/sessions/{session}/outliers.png"),
        per_session("results/syllables/{session}.csv"),
        per_session("results/nwb/{session}.nwb"),


if BATCH == 1:

    rule prepare_session:
        input:
            "pose/{session}.h5",
        output:
            "results/keypoints/{session}.h5",
            "results/sessions/{session}/clean.h5",
            "results/sessions/{session}/qa.tsv",
            "results/sessions/{session}/outliers.png",
        log:
            "results/logs/prepare_session/{session}.log",
        benchmark:
            "results/benchmarks/prepare_session/{session}.tsv"
        conda:
            "env.yaml"
        script:
            "job.py"

    rule export_session:
        input:
            lambda wc: (
                "results/extract/results.h5"
                if wc.session in TRAINED
                else f"results/apply/{wc.session}.h5"
            ),
            "results/sessions/{session}/clean.h5",
            "results/provenance/model.json",
            "pose/{session}.h5",
            "results/keypoints/{session}.h5",
        output:
            "results/nwb/{session}.nwb",
            "results/syllables/{session}.csv",
        log:
            "results/logs/export_session/{session}.log",
        benchmark:
            "results/benchmarks/export_session/{session}.tsv"
        conda:
            "env.yaml"
        script:
            "job.py"

else:
    # Fewer, larger jobs: a batch job declares every file of its sessions (the summaries
    # find its producer by name), so each batch is a rule of its own.
    for b, members in MEMBERS.items():

        rule:
            name:
                f"prepare_batch_{b}"
            input:
                per_session("pose/{session}.h5", members),
            output:
                per_session("results/keypoints/{session}.h5", members),
                per_session("results/sessions/{session}/clean.h5", members),
                per_session("results/sessions/{session}/qa.tsv", members),
                per_session("results/sessions/{session}/outliers.png", members),
            log:
                f"results/logs/prepare_batch/{b}.log",
            benchmark:
                f"results/benchmarks/prepare_batch/{b}.tsv"
            conda:
                "env.yaml"
            script:
                "job.py"

        rule:
            name:
                f"export_batch_{b}"
            input:
                batch_export_inputs(members),
            output:
                per_session("results/nwb/{session}.nwb", members),
                per_session("results/syllables/{session}.csv", members),
            log:
                f"results/logs/export_batch/{b}.log",
            benchmark:
                f"results/benchmarks/export_batch/{b}.tsv"
            conda:
                "env.yaml"
            script:
                "job.py"


rule apply_model:
    input:
        "results/model/checkpoint.h5",
        "results/sessions/{session}/clean.h5",
    output:
        "results/apply/{session}.h5",
    log:
        "results/logs/apply_model/{session}.log",
    conda:
        "env.yaml"
    script:
        "job.py"


rule clean_manifest:
    input:
        per_session("results/sessions/{session}/clean.h5", TRAIN),
    output:
        "results/qa/clean_files.tsv",
    log:
        "results/logs/clean_manifest.log",
    script:
        "job.py"


rule training_set:
    input:
        per_session("results/sessions/{session}/qa.tsv", TRAIN),
    output:
        "results/qa/training_set.tsv",
    log:
        "results/logs/training_set.log",
    script:
        "job.py"


rule prepare_training_data:
    input:
        "results/qa/training_set.tsv",
        per_session("results/sessions/{session}/clean.h5", TRAIN),
    output:
        "results/data/data.h5",
    log:
        "results/logs/prepare_training_data.log",
    script:
        "job.py"


rule fit:
    input:
        "results/data/data.h5",
    output:
        "results/model/checkpoint.h5",
    log:
        "results/logs/fit.log",
    script:
        "job.py"


rule extract_results:
    input:
        "results/model/checkpoint.h5",
        "results/qa/clean_files.tsv",
    output:
        "results/extract/results.h5",
    log:
        "results/logs/extract_results.log",
    script:
        "job.py"


rule model_provenance:
    input:
        "results/model/checkpoint.h5",
    output:
        "results/provenance/model.json",
    log:
        "results/logs/model_provenance.log",
    script:
        "job.py"


rule plot_trajectories:
    input:
        "results/extract/results.h5",
        per_session("results/sessions/{session}/clean.h5", TRAIN),
    output:
        "results/trajectories.png",
    log:
        "results/logs/plot_trajectories.log",
    script:
        "job.py"


rule group_statistics:
    input:
        "results/extract/results.h5",
        per_session("results/apply/{session}.h5", APPLY),
    output:
        "results/groups/stats_df.tsv",
    log:
        "results/logs/group_statistics.log",
    script:
        "job.py"


rule qa_summary:
    input:
        per_session("results/sessions/{session}/qa.tsv"),
        "results/qa/training_set.tsv",
    output:
        "results/qa/summary.tsv",
    log:
        "results/logs/qa_summary.log",
    script:
        "job.py"


rule provenance:
    input:
        "results/provenance/model.json",
        per_session("results/keypoints/{session}.h5"),
        per_session("results/syllables/{session}.csv"),
    output:
        "results/provenance.json",
    log:
        "results/logs/provenance.log",
    script:
        "job.py"


rule run_summary:
    input:
        per_session("results/syllables/{session}.csv"),
        "results/qa/summary.tsv",
    output:
        "results/summary.txt",
    log:
        "results/logs/run_summary.log",
    script:
        "job.py"
'''

# The least a per-session workflow can be: one job per session (its source in, one table
# out, a log) and one summary over the tables.
MINIMAL_SNAKEFILE = r'''
import csv

with open("sessions.tsv") as table:
    SESSIONS = [r["session"] for r in csv.DictReader(table, delimiter="\t")]


rule all:
    input:
        "results/summary.txt",


rule run_summary:
    input:
        expand("results/syllables/{session}.csv", session=SESSIONS),
    output:
        "results/summary.txt",
    log:
        "results/logs/run_summary.log",
    script:
        "job.py"


rule session:
    input:
        "pose/{session}.h5",
    output:
        "results/syllables/{session}.csv",
    log:
        "results/logs/session/{session}.log",
    script:
        "job.py"
'''


def write_snakefile(workdir: Path, batch: int) -> None:
    """batch 0: the minimal workflow; otherwise kpms-flow's shape, batch sessions per job."""
    text = MINIMAL_SNAKEFILE if batch == 0 else SNAKEFILE.replace("@BATCH@", str(batch))
    (workdir / "Snakefile").write_text(text)
    (workdir / "env.yaml").write_text("dependencies: [python]\n")
    (workdir / "job.py").write_text("# never run: dry runs only\n")
    # older than the outputs complete() makes (a script newer than its outputs reruns them)
    past = time.time() - 3600
    for name in ("Snakefile", "env.yaml", "job.py"):
        os.utime(workdir / name, (past, past))


def setup(workdir: Path, n_sessions: int, batch: int) -> None:
    (workdir / "pose").mkdir(parents=True)
    rows = []
    for i in range(n_sessions):
        name = f"s{i:05d}"
        (workdir / "pose" / f"{name}.h5").touch()
        rows.append({"session": name, "train": "true" if i < n_sessions - 1 else "false"})
    pd.DataFrame(rows).to_csv(workdir / "sessions.tsv", sep="\t", index=False)
    write_snakefile(workdir, batch)


def session_references(text: str, session: str) -> dict[tuple[str, str], int]:
    """(rule, "input" or "output") -> how many of its jobs' files name the session, from a
    dry run's listing: the per-session shape that this floor copies."""
    name = re.compile(re.escape(session) + r"(?!\d)")
    counts: dict[tuple[str, str], int] = {}
    for rule, inputs, outputs in jobs_listed(text):
        for kind, files in (("input", inputs), ("output", outputs)):
            n = sum(bool(name.search(f)) for f in files)
            if n:
                counts[(rule, kind)] = counts.get((rule, kind), 0) + n
    return counts


def job_stats(jobs: dict[str, int]) -> str:
    """Jobs per rule, a batch's rules counted together (prepare_batch_*=100)."""
    counts: dict[str, int] = {}
    for rule, n in jobs.items():
        name = re.sub(r"_\d+$", "_*", rule)
        counts[name] = counts.get(name, 0) + n
    return " ".join(f"{k}={v}" for k, v in counts.items()) or "-"


def dry_run(workdir: Path) -> tuple[float, float, str]:
    return timed_dry_run([SNAKEMAKE, "-d", str(workdir), "--cores", "2", "-n"], workdir)


def run(workdir: Path, n: int, batch: int, repeats: int) -> list[dict]:
    rows = []

    def measure(state: str, sessions: int) -> str:
        times, cpus, text = [], [], ""
        for _ in range(repeats):
            elapsed, cpu, text = dry_run(workdir)
            times.append(elapsed)
            cpus.append(cpu)
        jobs = job_counts(text)
        rows.append(
            {
                "sessions": sessions,
                "batch": batch,
                "state": state,
                "jobs": sum(jobs.values()),
                "median_s": statistics.median(times),
                "median_cpu_s": statistics.median(cpus),
                "load1": os.getloadavg()[0],
                "job_stats": job_stats(jobs),
            }
        )
        print(
            f"{sessions} sessions, batch {batch}, {state}: {rows[-1]['median_s']:.2f} s "
            f"wall, {rows[-1]['median_cpu_s']:.2f} s CPU, {rows[-1]['jobs']} jobs "
            f"(load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        return text

    setup(workdir, n, batch)
    fresh = measure("fresh", n)
    complete(workdir, fresh)
    measure("complete", n)
    if rows[-1]["jobs"]:
        raise SystemExit(f"the completed state still has jobs: {rows[-1]['job_stats']}")
    name = f"s{n:05d}"
    (workdir / "pose" / f"{name}.h5").touch()
    with open(workdir / "sessions.tsv", "a") as table:
        table.write(f"{name}\tfalse\n")
    measure("add_one", n + 1)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1000])
    parser.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=[1],
        help="sessions per job (default: 1); 0: the minimal one-job-per-session workflow",
    )
    parser.add_argument("--repeats", type=int, default=3, help="dry runs per measurement")
    args = parser.parse_args(argv)

    rows = []
    for n in args.sessions:
        for batch in args.batch:
            with tempfile.TemporaryDirectory(prefix="kpms_flow_dry_run_floor_") as scratch:
                rows += run(Path(scratch), n, batch, args.repeats)
    write_results(rows, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
