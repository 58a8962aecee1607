"""The whole workflow on the embedded demo with tiny iteration counts (real Snakemake,
real keypoint-moseq)."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, copy_run, dry_run_jobs

pytestmark = pytest.mark.workflow

DEMO_SESSIONS = [f"demo_{i:02d}" for i in range(1, 6)]
TRAIN = DEMO_SESSIONS[:4]
EVERY_STAGE = {
    "demo_data": 1,
    "prepare_session": 5,
    "qa_summary": 1,
    "training_set": 1,
    "clean_manifest": 1,
    "noise_calibration": 1,  # config/test.yaml calibrates from the demo's labels
    "plot_calibration": 1,
    "prepare_training_data": 1,
    "plot_pca": 1,
    "start_kappa_search": 2,
    "probe_kappa": 4,
    "search_round": 2,
    "choose_kappa": 2,
    "plot_kappa_search": 2,
    "fit_arhmm": 2,
    "fit_full_model": 2,
    "select_model": 1,
    "reindex_syllables": 1,
    "extract_results": 1,
    "apply_model": 1,
    "export_session": 5,
    "run_summary": 1,
    "plot_progress": 2,
    "plot_syllables": 1,
    "plot_trajectories": 1,
    "group_statistics": 1,
    "plot_ground_truth": 1,
    "grid_movies": 1,
    "table_view": 7,
    "model_provenance": 1,
    "provenance": 1,
    "all": 1,
}


def test_dry_run_on_fresh_directory_lists_every_stage(fresh_dry_run):
    assert fresh_dry_run == EVERY_STAGE


def test_extract_results_inputs_do_not_grow_with_sessions(fresh_dry_run_output):
    """results.h5 is an input of two export jobs per session; thousands of inputs on its
    producer made Snakemake's DAG quadratic in sessions (benchmarks/README.md, "Dry run at
    scale"). The training sessions' clean files reach it through one manifest."""
    block = fresh_dry_run_output.split("rule extract_results:", 1)[1]
    inputs = block.split("input:", 1)[1].splitlines()[0].strip().split(", ")
    assert "results/qa/clean_files.tsv" in inputs
    assert not [path for path in inputs if "/sessions/" in path], inputs
    manifest = fresh_dry_run_output.split("rule clean_manifest:", 1)[1]
    assert manifest.split("input:", 1)[1].splitlines()[0].count("clean.h5") == len(TRAIN)


def test_the_dry_run_floor_has_this_workflows_per_session_shape(tmp_path):
    """benchmarks/dry_run_floor.py measures Snakemake's cost for this workflow's DAG without
    its code: each session's files must appear in the same rules, as often, as in the real
    workflow's dry run, or its floor stands for another workflow."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import dry_run_floor
    import dry_run_scale

    real, floor = tmp_path / "real", tmp_path / "floor"
    real.mkdir()
    _, _, real_listing = dry_run_scale.dry_run(real, dry_run_scale.setup(real, 4))
    dry_run_floor.setup(floor, 4, batch=1)
    _, _, floor_listing = dry_run_floor.dry_run(floor)
    for session in ("s00000", "s00003"):  # a training session, the held-out one
        real_refs = dry_run_floor.session_references(real_listing, session)
        assert ("prepare_session", "output") in real_refs, real_refs
        assert dry_run_floor.session_references(floor_listing, session) == real_refs


@pytest.fixture(scope="module")
def demo_run(demo_reference):
    return demo_reference, demo_reference / "config" / "test.yaml", None


def test_demo_run_writes_one_csv_per_session(demo_run):
    workdir, _, _ = demo_run
    for session in DEMO_SESSIONS:
        table = pd.read_csv(workdir / "results" / "syllables" / f"{session}.csv")
        assert len(table) == 1800
        assert list(table.columns[:6]) == ["frame", "time_s", "syllable", "centroid x", "centroid y", "heading"]
        assert table["frame"].tolist() == list(range(1800))
        assert table["time_s"].to_numpy() == pytest.approx(np.arange(1800) / 30)  # the demo's 30 fps
        latent = [c for c in table.columns if c.startswith("latent_state")]
        latent_dim = int((workdir / "results" / "pca" / "latent_dim.txt").read_text())
        assert len(latent) == latent_dim
        assert table["syllable"].min() >= 0
        assert np.isfinite(table.drop(columns="syllable").to_numpy()).all()


def test_syllable_zero_is_most_frequent(demo_run):
    workdir, _, _ = demo_run
    labels = np.concatenate(
        [pd.read_csv(workdir / "results" / "syllables" / f"{s}.csv")["syllable"] for s in TRAIN]
    )
    counts = np.bincount(labels)
    # keypoint-moseq reindexes by run-length frequency (number of bouts).
    bouts = np.bincount(labels[np.r_[True, np.diff(labels) != 0]], minlength=len(counts))
    assert np.argmax(bouts) == 0


def test_results_h5_holds_training_sessions_and_fitted_checkpoint_untouched(demo_run):
    workdir, _, _ = demo_run
    with h5py.File(workdir / "results" / "extract" / "results.h5") as f:
        assert sorted(f) == TRAIN
        assert f["demo_01"]["syllable"].shape == (1800,)
    # the delivered fit: the restart the model selection chose (a link to its checkpoint)
    with h5py.File(workdir / "results" / "selection" / "chosen_checkpoint.h5") as fitted, \
            h5py.File(workdir / "results" / "model" / "checkpoint.h5") as final:
        fitted_iters = sorted(int(k) for k in fitted["model_snapshots"])
        final_iters = sorted(int(k) for k in final["model_snapshots"])
        assert final_iters == fitted_iters[-1:]
        last = str(fitted_iters[-1])
        order = pd.read_csv(workdir / "results" / "model" / "syllable_order.tsv", sep="\t")
        z_fitted = fitted[f"model_snapshots/{last}/states/z"][()]
        z_final = final[f"model_snapshots/{last}/states/z"][()]
        # The copy is the fit relabelled: final label i is fitted state order[i].
        assert np.array_equal(order["fitted_state"].to_numpy()[z_final], z_fitted)


def test_qa_summary_and_run_summary(demo_run):
    workdir, _, _ = demo_run
    qa = pd.read_csv(workdir / "results" / "qa" / "summary.tsv", sep="\t", keep_default_na=False)
    assert qa["session"].tolist() == DEMO_SESSIONS
    assert qa["used_for_training"].tolist() == [True] * 4 + [False]
    assert qa.loc[4, "exclusion_reason"].startswith("train: false")
    assert ((qa["nan_fraction"] > 0) & (qa["nan_fraction"] < 0.1)).all()
    summary = pd.read_csv(workdir / "results" / "summary.tsv", sep="\t").iloc[0]
    assert summary["training_sessions"] == 4 and summary["applied_sessions"] == 1
    assert summary["median_duration_ms"] == pytest.approx(
        summary["median_duration_frames"] * 1000 / 30
    )
    assert 0 <= summary["nmi"] <= 1
    assert "median syllable duration" in (workdir / "results" / "summary.txt").read_text()


def test_provenance_names_the_model_sessions_and_versions(demo_run):
    import hashlib
    import json

    workdir, _, _ = demo_run
    record = json.loads((workdir / "results" / "provenance.json").read_text())
    model = (workdir / "results" / "model" / "checkpoint.h5").read_bytes()
    assert record["model"]["sha256"] == hashlib.sha256(model).hexdigest()
    assert record["sessions"]["train"] == TRAIN and record["sessions"]["applied"] == DEMO_SESSIONS[4:]
    assert all(len(s["source_sha256"]) == 64 for s in record["sessions"]["sources"])
    assert record["packages"]["keypoint-moseq"] == "0.8.1"
    assert record["seeds"] == {"seed": 0}
    assert record["config"]["kappa_search"]["enabled"] is True  # a schema default, filled in
    assert set(record["kappa"]) == {"arhmm", "full_model"}


def test_nwb_files_validate_and_hold_each_sessions_bouts(demo_run):
    import warnings

    import pynwb
    from kpms_flow.nwb_export import read_bouts

    workdir, _, _ = demo_run
    for session in [TRAIN[0], DEMO_SESSIONS[4]]:  # a training session and the applied one
        path = workdir / "results" / "nwb" / f"{session}.nwb"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert pynwb.validate(path=str(path)) == []
        labels = pd.read_csv(workdir / "results" / "syllables" / f"{session}.csv")["syllable"].to_numpy()
        bouts = read_bouts(path)
        assert len(bouts) == 1 + np.count_nonzero(np.diff(labels))
        assert bouts["syllable"].tolist() == labels[np.r_[True, np.diff(labels) != 0]].tolist()
        assert bouts["label"].tolist() == [str(s) for s in bouts["syllable"]]
        assert bouts["stop_time"].iloc[-1] == pytest.approx(1800 / 30)


def test_a_syllable_table_reruns_only_the_cheap_downstream_jobs(demo_run, tmp_path):
    import yaml

    workdir, config, _ = demo_run
    copy = copy_run(workdir, tmp_path / "named")
    (copy / "config" / "syllables.tsv").write_text(
        "syllable\tname\tmerge_into\tdescription\n0\twalk\t\t\n2\t\t1\tlooks like 1\n"
    )
    named = yaml.safe_load(config.read_text()) | {"syllable_table": "config/syllables.tsv"}
    named_config = copy / "config" / "named.yaml"
    named_config.write_text(yaml.safe_dump(named))
    # no fit, extraction, application or figure of the model: the CSVs, NWB files and
    # what reads them
    assert dry_run_jobs(copy, named_config) == {
        "syllable_mapping": 1,
        "export_session": 5,  # CSV and NWB files
        "run_summary": 1,
        "plot_ground_truth": 1,
        "table_view": 1,
        "provenance": 1,
        "all": 1,
    }


def test_second_invocation_schedules_nothing(demo_run):
    workdir, config, _ = demo_run
    assert dry_run_jobs(workdir, config) == {}


def test_every_rule_logged_and_plots_written(demo_run):
    workdir, _, _ = demo_run
    logs = workdir / "results" / "logs"
    for rule in EVERY_STAGE:
        if rule != "all":
            assert (logs / rule).exists() or (logs / f"{rule}.log").exists(), rule
    for plot in ["pca/scree.png", "pca/pcs.png", "sessions/demo_01/outliers.png"]:
        assert (workdir / "results" / plot).stat().st_size > 1000


def test_reapply_all_is_an_explicit_target_that_refits_nothing(demo_run):
    workdir, config, _ = demo_run
    jobs = dry_run_jobs(workdir, config, "reapply_all")
    assert jobs == {"reapply_model": 5, "reapply_all": 1}
    # and it is not part of the default target: test_second_invocation_schedules_nothing


def test_each_stages_delivered_duration_is_checked_and_a_converged_search_is_confirmed(demo_run):
    """Issue 14 on the demo: the summary gives each stage's probe and final median against
    the window, and a search that says converged ended on a fit of the stage's length
    (test config: probes of 2 iterations, stages of 3) inside the window, the very fit
    restart 0 delivers."""
    import json

    workdir, _, _ = demo_run
    summary = json.loads((workdir / "results" / "summary.json").read_text())
    text = (workdir / "results" / "summary.txt").read_text()
    assert summary["target_duration_ms"] == [300, 400]
    for stage in ("arhmm", "full_model"):
        chosen = pd.read_csv(workdir / f"results/search/{stage}/chosen.tsv", sep="\t").iloc[0]
        trace = pd.read_csv(workdir / f"results/search/{stage}/trace.tsv", sep="\t")
        final = pd.read_csv(workdir / f"results/fits/restart_0/{stage}/metrics.tsv", sep="\t").iloc[0]
        assert summary[f"final_median_duration_ms_{stage}"] == pytest.approx(final["median_duration_ms"])
        assert summary[f"probe_median_duration_ms_{stage}"] == pytest.approx(
            chosen["short_probe_median_duration_ms"])
        assert summary[f"probe_iterations_{stage}"] == chosen["short_probe_iterations"] == 2
        where = "inside" if summary[f"final_in_window_{stage}"] else "OUTSIDE"
        assert f"final fit {final['median_duration_ms']:.0f} ms after 3 iterations" in text
        assert f": {where} the target 300-400 ms" in text
        if chosen["status"] == "converged":
            assert chosen["iterations"] == 3 and summary[f"final_in_window_{stage}"] is True
            assert final["median_duration_ms"] == pytest.approx(chosen["median_duration_ms"])
        for row in trace[trace["source_round"] >= 0].itertuples():
            # A confirmation continues a 2-iteration probe of an earlier round to 3.
            source = trace[(trace["round"] == row.source_round) & (trace["probe"] == row.source_probe)]
            assert row.iterations == 3 and source["iterations"].tolist() == [2]
            assert row.round > row.source_round
    # The demo's reference run confirms at least one stage (measured: the full model).
    assert (pd.concat(pd.read_csv(workdir / f"results/search/{s}/trace.tsv", sep="\t")
                      for s in ("arhmm", "full_model"))["source_round"] >= 0).any()
