"""Incremental runs (issue 4): adding a session recomputes only that session's outputs.

One complete demo run (tiny iterations, see ``overrides``), then, in sequence on the same
working directory: a held-out session (``train: false``) is appended and run; every other
change (a session flipped to training, a plot option, a model or PCA setting) is checked by a
dry run with its own config / sessions table, so the completed state is never modified by
those checks.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TEST_CONFIG, copy_run, dry_run_jobs, snakemake
from kpms_flow.dryrun import job_counts

pytestmark = pytest.mark.workflow

POSE = "demo/data/pose/{name}DLC_resnet50_demoSep1shuffle1_1000.h5"
TRUTH = "demo/data/ground_truth/{name}.csv"
SESSIONS_TSV = "config/demo_sessions.tsv"
HELD_OUT = "demo_05"  # the demo's train: false session
NEW = "demo_06"  # appended, train: false, a copy of the held-out session's pose file
# Cheap summaries over all sessions: tables, group statistics, the ground-truth comparison.
SUMMARIES = {
    "qa_summary": 1,
    "run_summary": 1,
    "group_statistics": 1,
    "plot_ground_truth": 1,
    "table_view": 3,
    "provenance": 1,  # lists the sessions
    "all": 1,
}
NEW_SESSION_JOBS = {
    "prepare_session": 1,
    "apply_model": 1,
    "export_session": 1,  # its CSV and NWB files
}
# A refit: training data, PCA, every restart's fit chain, the selection, the reindexed model.
RESTARTS = yaml.safe_load(TEST_CONFIG.read_text())["restarts"]["num_restarts"]
FITS = {"fit_arhmm": RESTARTS, "fit_full_model": RESTARTS, "select_model": 1}
REFIT = {"prepare_training_data": 1, **FITS, "reindex_syllables": 1}


def assert_jobs(jobs: dict[str, int], expected: dict[str, int]) -> None:
    for rule, count in expected.items():
        assert jobs.get(rule) == count, (rule, jobs)


def dry_run(workdir: Path, config: Path) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Job counts (as ``dry_run_jobs``) and every scheduled job's ``reason:`` line per rule."""
    proc = snakemake(workdir, "-n", config=config)
    text = proc.stdout + proc.stderr
    reasons: dict[str, list[str]] = {}
    rule = None
    for line in text.splitlines():
        match = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):\s*$", line.strip())
        if match:
            rule = match.group(1)
        elif rule and line.strip().startswith("reason:"):
            reasons.setdefault(rule, []).append(line.strip()[len("reason:") :].strip())
            rule = None
    return job_counts(text), reasons


def variant(workdir: Path, name: str, sessions: pd.DataFrame | None = None, **changes) -> Path:
    """A config (and sessions table) beside the run's own, leaving the run's files as they are."""
    config = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
    config.update(changes)
    if sessions is not None:
        table = f"config/{name}_sessions.tsv"
        sessions.to_csv(workdir / table, sep="\t", index=False)
        config["sessions"] = table
    path = workdir / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def read_table(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / SESSIONS_TSV, sep="\t", dtype=str, keep_default_na=False)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def held_out_outputs(workdir: Path) -> dict[str, tuple[str, int]]:
    """Hash and mtime of the held-out session's per-session outputs."""
    paths = [
        f"results/apply/{HELD_OUT}.h5",
        f"results/syllables/{HELD_OUT}.csv",
        f"results/sessions/{HELD_OUT}/clean.h5",
    ]
    return {p: (digest(workdir / p), (workdir / p).stat().st_mtime_ns) for p in paths}


@pytest.fixture(scope="module")
def complete_run(demo_reference, tmp_path_factory):
    """A copy of the shared complete demo run (searches included), to mutate."""
    workdir = copy_run(demo_reference, tmp_path_factory.mktemp("incremental"))
    config = workdir / "config" / "test.yaml"
    assert dry_run_jobs(workdir, config) == {}, "the copied complete run left jobs to do"
    return workdir, config


@pytest.fixture(scope="module")
def added_session(complete_run):
    """Append NEW (train: false) to the completed run, dry-run it, then run it."""
    workdir, config = complete_run
    before = held_out_outputs(workdir)
    shutil.copy(workdir / POSE.format(name=HELD_OUT), workdir / POSE.format(name=NEW))
    # The demo config names a ground-truth folder: give the copy the held-out session's truth
    # (see test_session_without_ground_truth_still_updates_run_summary for the case without).
    shutil.copy(workdir / TRUTH.format(name=HELD_OUT), workdir / TRUTH.format(name=NEW))
    table = read_table(workdir)
    row = table[table["session"] == HELD_OUT].iloc[0].copy()
    row["session"], row["path"], row["train"] = NEW, POSE.format(name=NEW), "false"
    # A new recording has a video of its own: two sessions on one video would be two animals,
    # and the held-out session's calibration labels could then belong to either.
    row["video"] = ""
    pd.concat([table, row.to_frame().T]).to_csv(workdir / SESSIONS_TSV, sep="\t", index=False)
    jobs, reasons = dry_run(workdir, config)
    snakemake(workdir, "--resources", "gpu=1", config=config)
    return {
        "workdir": workdir,
        "config": config,
        "jobs": jobs,
        "reasons": reasons,
        "held_out_before": before,
    }


# ---------------------------------------------------------------- adding a session
def test_adding_held_out_session_schedules_only_its_jobs_and_summaries(added_session):
    assert added_session["jobs"] == {**NEW_SESSION_JOBS, **SUMMARIES}
    # and those per-session jobs are NEW's: the others' outputs are not missing or stale
    for rule in NEW_SESSION_JOBS:
        assert len(added_session["reasons"][rule]) == 1
        assert "Missing output files" in added_session["reasons"][rule][0], rule
        assert NEW in added_session["reasons"][rule][0], rule


def test_after_the_new_session_nothing_is_left(added_session):
    assert dry_run_jobs(added_session["workdir"], added_session["config"]) == {}


def test_new_session_csv_follows_the_model_conventions(added_session):
    workdir = added_session["workdir"]
    new = pd.read_csv(workdir / "results" / "syllables" / f"{NEW}.csv")
    trained = pd.read_csv(workdir / "results" / "syllables" / "demo_01.csv")
    assert list(new.columns) == list(trained.columns)
    assert len(new) == len(pd.read_hdf(workdir / POSE.format(name=NEW)))
    assert np.isfinite(new.drop(columns="syllable").to_numpy()).all()

    with h5py.File(workdir / "results" / "model" / "checkpoint.h5") as f:
        last = max(f["model_snapshots"], key=int)
        num_states = int(f[f"model_snapshots/{last}/hypparams/trans_hypparams/num_states"][()])
    labels = new["syllable"].to_numpy()
    assert labels.dtype.kind == "i" and labels.min() >= 0 and labels.max() < num_states
    # Reindexed ids: 0 is the training set's most frequent syllable, so data like the training
    # data lands mostly on low ids and on syllables the training sessions use.
    training_labels = np.concatenate(
        [
            pd.read_csv(workdir / "results" / "syllables" / f"demo_{i:02d}.csv")["syllable"]
            for i in range(1, 5)
        ]
    )
    assert np.isin(labels, np.unique(training_labels)).mean() >= 0.9
    assert np.median(labels) < num_states / 2
    assert np.bincount(labels).argmax() < num_states / 4


def test_new_session_results_h5_has_the_keypoint_moseq_layout(added_session):
    workdir = added_session["workdir"]
    latent_dim = int((workdir / "results" / "pca" / "latent_dim.txt").read_text())
    with h5py.File(workdir / "results" / "apply" / f"{NEW}.h5") as f:
        assert list(f) == [NEW]
        group = f[NEW]
        assert {"syllable", "latent_state", "centroid", "heading"} <= set(group)
        n = group["syllable"].shape[0]
        assert n == len(pd.read_hdf(workdir / POSE.format(name=NEW)))
        assert group["latent_state"].shape == (n, latent_dim)
        assert group["centroid"].shape == (n, 2)
        assert group["heading"].shape == (n,)


def test_held_out_session_unchanged_by_adding_another(added_session):
    # not rerun (same mtimes) and byte-identical: its labels do not depend on NEW
    assert held_out_outputs(added_session["workdir"]) == added_session["held_out_before"]


def test_applying_is_deterministic(added_session):
    # NEW is a copy of the held-out session's pose file: applied on its own, with the
    # model's seed, it must get the held-out session's labels exactly.
    syllables = added_session["workdir"] / "results" / "syllables"
    new = pd.read_csv(syllables / f"{NEW}.csv")
    held_out = pd.read_csv(syllables / f"{HELD_OUT}.csv")
    np.testing.assert_array_equal(new["syllable"], held_out["syllable"])
    np.testing.assert_allclose(new.drop(columns="syllable"), held_out.drop(columns="syllable"))


# ---------------------------------------------------------------- other changes (dry runs)
def test_flipping_a_session_to_training_refits(added_session):
    workdir = added_session["workdir"]
    table = read_table(workdir)
    table.loc[table["session"] == HELD_OUT, "train"] = "true"
    jobs, reasons = dry_run(workdir, variant(workdir, "flip", sessions=table))
    assert_jobs(jobs, REFIT)
    assert_jobs(jobs, dict.fromkeys(["extract_results", "plot_pca", "qa_summary", "run_summary"], 1))
    # the per-session preprocessing is reused; the flipped session now comes from the fit
    assert "prepare_session" not in jobs
    assert jobs["apply_model"] == 1  # NEW only, against the new model
    assert jobs["export_session"] == 6
    # the reasons say why: the training set's decider has a new input, the flipped session's
    # QA table (Snakemake names it where the held-out session's QA ran after the decision in
    # the reference run, which depends on job order), and prepare_training_data names the decision
    assert jobs["training_set"] == 1
    assert any(
        "Set of input files has changed" in r or f"results/sessions/{HELD_OUT}/qa.tsv" in r
        for r in reasons["training_set"]
    ), reasons["training_set"]
    assert any("results/qa/training_set.tsv" in r for r in reasons["prepare_training_data"])
    # downstream jobs name the upstream job's output (Snakemake reports that reason first)
    for rule in ["fit_arhmm", "fit_full_model", "extract_results"]:
        assert any("Input files updated by another job" in r for r in reasons[rule]), rule


def test_plot_option_reruns_only_plots(added_session):
    workdir = added_session["workdir"]
    config = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
    plots = dict(config.get("plots") or {})
    plots["dpi"] = int(plots.get("dpi", 100)) + 50
    jobs, reasons = dry_run(workdir, variant(workdir, "plots", plots=plots))
    # plots and the tables drawn from them, nothing fitted or extracted
    plot_rules = {
        "plot_pca",
        "plot_kappa_search",
        "plot_progress",
        "plot_calibration",
        "plot_syllables",
        "plot_trajectories",
        "group_statistics",
        "plot_ground_truth",
        "table_view",  # the HTML view of stats_df, redrawn from group_statistics
        "provenance",  # records the effective config
        "all",
    }
    assert set(jobs) <= plot_rules and "plot_pca" in jobs, jobs
    assert any("Params have changed" in r for r in reasons["plot_pca"])


@pytest.fixture(scope="module")
def fewer_states(added_session):
    """The dry run after a model setting (trans_hypparams.num_states) changed."""
    workdir = added_session["workdir"]
    config = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
    trans = dict(config["trans_hypparams"])
    trans["num_states"] = int(trans["num_states"]) - 5
    return dry_run(workdir, variant(workdir, "model", trans_hypparams=trans))


def test_model_setting_refits(fewer_states):
    jobs, reasons = fewer_states
    assert_jobs(jobs, FITS)
    assert_jobs(jobs, dict.fromkeys(["reindex_syllables", "extract_results", "run_summary"], 1))
    assert jobs["apply_model"] == 2 and jobs["export_session"] == 6
    # loading, QA and its summary do not depend on the model
    for rule in ["prepare_session", "qa_summary"]:
        assert rule not in jobs, (rule, jobs)
    # Why: the first model job whose params hold the setting says so, with the recorded value
    # (Snakemake gives the jobs after it "Input files updated by another job").
    changed = [r for rs in reasons.values() for r in rs if "Params have changed" in r]
    assert changed and any("num_states" in r for r in changed), reasons


def test_pca_setting_refits_pca_and_models(added_session):
    workdir = added_session["workdir"]
    config = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
    frames = int(config.get("PCA_fitting_num_frames", 1_000_000)) // 2
    jobs, reasons = dry_run(workdir, variant(workdir, "pca", PCA_fitting_num_frames=frames))
    assert_jobs(jobs, REFIT)  # formatting and PCA are one job
    assert_jobs(jobs, dict.fromkeys(["plot_pca", "extract_results", "run_summary"], 1))
    for rule in ["prepare_session", "qa_summary"]:
        assert rule not in jobs, (rule, jobs)
    changed = reasons.get("prepare_training_data", [])
    assert any("Params have changed" in r and "PCA_fitting_num_frames" in r for r in changed)


# ---------------------------------------------------------------- settings and missing truth
def test_fit_only_setting_keeps_training_data_and_pca(fewer_states):
    jobs, _ = fewer_states
    assert jobs.get("fit_arhmm") == RESTARTS
    assert not {"prepare_training_data", "plot_pca"} & set(jobs), jobs


def test_session_without_ground_truth_still_updates_run_summary(added_session):
    workdir = added_session["workdir"]
    table = read_table(workdir)
    row = table[table["session"] == NEW].iloc[0].copy()
    row["session"] = "demo_07"  # same pose file, no demo/data/ground_truth/demo_07.csv
    table = pd.concat([table, row.to_frame().T])
    jobs, _ = dry_run(workdir, variant(workdir, "no_truth", sessions=table))
    assert jobs.get("run_summary") == 1, jobs
