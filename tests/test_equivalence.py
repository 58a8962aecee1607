"""Same science as bare keypoint-moseq: one pipeline run and one run of the notebook's
sequence (benchmarks/bare_kpms.py) on the demo's training sessions, same seed, kappas,
latent_dim and iteration counts, give identical PCA, model and syllables; and the fitted
syllables recover the demo's true states far beyond what unfitted or misaligned labels reach.
"""

from __future__ import annotations

import subprocess
import sys

import h5py
import joblib
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, snakemake, users_environment, write_demo_config
from kpms_flow.metrics import nmi

pytestmark = pytest.mark.workflow

TRAIN = [f"demo_{i:02d}" for i in range(1, 5)]
# Big enough to fit, small enough for CI: 25 + 25 sweeps recover the true states with NMI
# 0.71, as 50 + 50 did (the unfitted model's labels score ~0.02, shuffled ones ~0.01).
FIXED = {
    "latent_dim": 3,
    "seed": 0,
    "kappa_search": {"enabled": False},
    "arhmm": {"kappa": 1.0e4, "num_iters": 25},
    "full_model": {"kappa": 1.0e3, "num_iters": 25},
    "save_every_n_iters": 25,
    "restarts": {"num_restarts": 1},  # one seed, as the bare script fits
    "calibration": {"annotations": []},  # keypoint-moseq's default error_estimator, as bare
}
NMI_FLOOR = 0.5


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The pipeline and the bare script on the same four training sessions."""
    workdir = tmp_path_factory.mktemp("equivalence")
    config = write_demo_config(workdir, **FIXED)
    # Training sessions only: applying the model to a held-out session costs two more
    # compilations (~2 min) and is compared by benchmarks/pipeline_overhead.py.
    table_path = workdir / "config" / "demo_sessions.tsv"
    table = pd.read_csv(table_path, sep="\t", keep_default_na=False)
    table[table["session"].isin(TRAIN)].to_csv(table_path, sep="\t", index=False)
    # The summary needs every fitting stage; plots and grid movies are left out. The target
    # follows a plain flag: --configfile and --resources would take it as one of theirs.
    # Both with XLA's default build, as users run (the other tests compile at -O0: conftest).
    snakemake(
        workdir,
        "--resources",
        "gpu=2",
        "--printshellcmds",
        "results/summary.tsv",
        config=config,
        env=users_environment(),
    )

    bare = workdir / "bare"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bare_kpms.py"),
        str(table_path),
        str(bare),
        "--latent-dim", str(FIXED["latent_dim"]),
        "--seed", str(FIXED["seed"]),
        "--arhmm-kappa", str(FIXED["arhmm"]["kappa"]),
        "--full-kappa", str(FIXED["full_model"]["kappa"]),
        "--arhmm-iters", str(FIXED["arhmm"]["num_iters"]),
        "--full-iters", str(FIXED["full_model"]["num_iters"]),
        "--num-states", "25",
    ]  # fmt: skip
    env = dict(users_environment(), KPMS_FLOW_JAX_CACHE=str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=1200)
    assert (
        proc.returncode == 0
    ), f"bare_kpms.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return workdir, bare / "project"


def bare_session(name: str) -> str:
    """keypoint-moseq names a DeepLabCut recording after its file."""
    return f"{name}DLC_resnet50_demoSep1shuffle1_1000"


def true_states(workdir, session) -> np.ndarray:
    return pd.read_csv(workdir / "demo" / "data" / "ground_truth" / f"{session}.csv")[
        "state"
    ].to_numpy()


def test_syllables_equal_bare_keypoint_moseq(runs):
    workdir, project = runs
    with (
        h5py.File(workdir / "results/extract/results.h5") as ours,
        h5py.File(project / "model" / "results.h5") as bare,
    ):
        assert sorted(ours) == TRAIN
        assert sorted(bare) == sorted(bare_session(s) for s in TRAIN)
        for session in TRAIN:
            for key in ("syllable", "latent_state", "centroid", "heading"):
                assert np.array_equal(
                    ours[session][key][()], bare[bare_session(session)][key][()]
                ), f"{session} {key}"
            exported = pd.read_csv(workdir / "results" / "syllables" / f"{session}.csv")
            assert np.array_equal(exported["syllable"], bare[bare_session(session)]["syllable"][()])


def test_pca_equals_bare_keypoint_moseq(runs):
    workdir, project = runs
    ours, bare = joblib.load(workdir / "results/pca/pca.p"), joblib.load(project / "pca.p")
    assert np.array_equal(ours.components_, bare.components_)
    assert np.array_equal(ours.explained_variance_, bare.explained_variance_)
    assert np.array_equal(ours.mean_, bare.mean_)
    variance = pd.read_csv(workdir / "results/pca/variance.tsv", sep="\t")
    assert np.allclose(variance["explained_variance_ratio"], bare.explained_variance_ratio_)
    assert (workdir / "results/pca/latent_dim.txt").read_text().strip() == "3"


def test_final_model_equals_bare_keypoint_moseq(runs):
    """Every array of the final (reindexed) snapshot, the random key included: the AR-HMM
    and full-model stages ran the same sweeps from the same state."""
    workdir, project = runs
    last = str(FIXED["arhmm"]["num_iters"] + FIXED["full_model"]["num_iters"])
    compared = []

    def same(ours, bare, prefix=""):
        assert sorted(ours) == sorted(bare), prefix
        for key in ours:
            if isinstance(ours[key], h5py.Group):
                same(ours[key], bare[key], f"{prefix}{key}/")
            else:
                assert np.array_equal(ours[key][()], bare[key][()]), f"{prefix}{key}"
                compared.append(prefix + key)

    with (
        h5py.File(workdir / "results/model/checkpoint.h5") as ours,
        h5py.File(project / "model" / "checkpoint.h5") as bare,
    ):
        assert list(ours["model_snapshots"]) == [last]
        same(ours[f"model_snapshots/{last}"], bare[f"model_snapshots/{last}"])
    assert {"seed", "params/pi", "params/Ab", "states/z", "hypparams/trans_hypparams/kappa"} <= set(
        compared
    )


def test_fitted_syllables_recover_true_states(runs):
    """The run summary's NMI is recomputed here from the exported syllables; the floor is
    far above what the unfitted model, shuffled or misaligned labels reach."""
    workdir, _ = runs
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t").iloc[0]
    fitted = {
        s: pd.read_csv(workdir / f"results/syllables/{s}.csv")["syllable"].to_numpy() for s in TRAIN
    }
    truth = {s: true_states(workdir, s) for s in TRAIN}
    pooled_truth = np.concatenate([truth[s] for s in TRAIN])
    score = nmi(pooled_truth, np.concatenate([fitted[s] for s in TRAIN]))
    assert summary["nmi"] == pytest.approx(score, abs=1e-9)
    assert score > NMI_FLOOR, f"NMI {score:.3f} against the true states"
    assert score > 10 * summary["nmi_shuffled"]

    # What broken pipelines would produce: each session's labels against another's states...
    rotated = np.concatenate([fitted[TRAIN[(i + 1) % len(TRAIN)]] for i in range(len(TRAIN))])
    assert nmi(pooled_truth, rotated) < 0.1
    # ...and the model before any sweep (snapshot 0 of the AR-HMM fit, its initial labels).
    import keypoint_moseq as kpms

    model, _, metadata, iteration = kpms.load_checkpoint(
        path=str(workdir / "results/fits/restart_0/arhmm/checkpoint.h5"), iteration=0
    )
    assert iteration == 0
    initial = kpms.extract_results(model, metadata, save_results=False)
    unfitted = nmi(pooled_truth, np.concatenate([initial[s]["syllable"] for s in TRAIN]))
    assert unfitted < 0.1, unfitted
