"""Model selection through the real workflow: the shared demo run fits two restarts (test
config) and chooses one by expected marginal likelihood; dry runs show that a restart is a
job chain of its own."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TEST_CONFIG, copy_run, dry_run_jobs

pytestmark = pytest.mark.workflow

NUM_RESTARTS = yaml.safe_load(TEST_CONFIG.read_text())["restarts"]["num_restarts"]
RESTART_NAMES = [f"restart_{r}" for r in range(NUM_RESTARTS)]


def last_snapshot(path, key: str) -> np.ndarray:
    with h5py.File(path) as f:
        last = max(f["model_snapshots"], key=int)
        return f[f"model_snapshots/{last}/{key}"][()]


def read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def test_eml_table_has_one_row_per_restart_and_chooses_its_argmax(demo_reference):
    eml = read_tsv(demo_reference / "results" / "selection" / "eml.tsv")
    assert list(eml["restart"]) == RESTART_NAMES
    seed = yaml.safe_load(TEST_CONFIG.read_text())["seed"]
    assert list(eml["seed"]) == [seed + r for r in range(NUM_RESTARTS)]
    assert np.isfinite(eml["eml"]).all() and (eml["eml_std_err"] >= 0).all()
    assert eml["chosen"].astype(bool).sum() == 1
    chosen = eml.loc[eml["chosen"].astype(bool), "restart"].item()
    assert chosen == eml.loc[eml["eml"].idxmax(), "restart"]
    # each row's kappa and duration are that restart's own fit's
    for row in eml.itertuples():
        fit = read_tsv(demo_reference / "results" / "fits" / row.restart / "full_model" / "metrics.tsv")
        assert row.kappa == pytest.approx(fit["kappa"].item())
        assert row.median_duration_ms == pytest.approx(fit["median_duration_ms"].item())


def test_the_delivered_model_is_the_chosen_restart(demo_reference):
    eml = read_tsv(demo_reference / "results" / "selection" / "eml.tsv")
    chosen = eml.loc[eml["chosen"].astype(bool), "restart"].item()
    fit = demo_reference / "results" / "fits" / chosen / "full_model" / "checkpoint.h5"
    chosen_copy = demo_reference / "results" / "selection" / "chosen_checkpoint.h5"
    # a copy, not a hard link: Snakemake touches outputs, which must not make the input newer
    assert chosen_copy.read_bytes() == fit.read_bytes()
    assert not os.path.samefile(chosen_copy, fit)
    # Reindexing renames syllables; the latent trajectories stay those of the chosen fit.
    delivered = demo_reference / "results" / "model" / "checkpoint.h5"
    np.testing.assert_array_equal(last_snapshot(delivered, "states/x"), last_snapshot(fit, "states/x"))
    others = [r for r in RESTART_NAMES if r != chosen]
    for other in others:
        other_fit = demo_reference / "results" / "fits" / other / "full_model" / "checkpoint.h5"
        assert not np.array_equal(last_snapshot(other_fit, "states/x"), last_snapshot(fit, "states/x"))


def test_stability_and_convergence_tables_cover_every_restart(demo_reference):
    selection = demo_reference / "results" / "selection"
    convergence = read_tsv(selection / "convergence.tsv")
    assert sorted(convergence["restart"].unique()) == RESTART_NAMES
    assert np.isfinite(convergence["log_likelihood"]).all()
    pairwise = read_tsv(selection / "pairwise_nmi.tsv")
    assert len(pairwise) > 0
    stability = read_tsv(selection / "stability.tsv")
    assert len(stability) > 0
    for figure in ["eml.png", "stability.png", "convergence.png"]:
        assert (selection / figure).stat().st_size > 1000
    summary = (demo_reference / "results" / "summary.txt").read_text()
    assert "restart" in summary.lower()


def test_adding_a_restart_schedules_only_its_chain(demo_reference, tmp_path):
    # The variant config lives outside the run (its sessions path is relative to the run).
    config = yaml.safe_load((demo_reference / "config" / "test.yaml").read_text())
    config["restarts"] = {"num_restarts": NUM_RESTARTS + 1}
    variant = tmp_path / "more_restarts.yaml"
    variant.write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(demo_reference, variant)
    assert jobs["fit_arhmm"] == 1 and jobs["fit_full_model"] == 1 and jobs["select_model"] == 1
    # nothing before the fits: the searches, PCA and data are reused
    assert not {"probe_kappa", "prepare_training_data", "choose_kappa"} & set(jobs), jobs


def test_a_lost_restart_reruns_alone(demo_reference, tmp_path):
    """A run killed while restart 1's full model was fitting (its checkpoint, and so the
    selection, never written): the next run schedules that fit and the selection, not the
    other restart's fits or anything before them."""
    workdir = copy_run(demo_reference, tmp_path / "run")
    for name in ("checkpoint.h5", "metrics.tsv"):
        (workdir / "results" / "fits" / "restart_1" / "full_model" / name).unlink()
    shutil.rmtree(workdir / "results" / "selection")
    jobs = dry_run_jobs(workdir, workdir / "config" / "test.yaml")
    assert jobs["fit_full_model"] == 1 and jobs["select_model"] == 1
    assert not {"fit_arhmm", "probe_kappa", "prepare_training_data"} & set(jobs), jobs
