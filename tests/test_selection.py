"""Model selection over restarts (kpms_flow.selection): EML equal to keypoint-moseq's,
stability measures, convergence traces, the choice and the rule's outputs.

The checkpoints are written without fitting (tests/synthetic_checkpoints.py): keypoint-moseq
reads and scores them as it does real ones, and no sweep is compiled.
"""

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from synthetic_checkpoints import (
    restart_checkpoints,
    synthetic_data,
    synthetic_model,
    write_checkpoint,
)

os.environ.setdefault("MPLBACKEND", "Agg")

ITERATIONS = (0, 5, 10)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return restart_checkpoints(tmp_path_factory.mktemp("restarts"), 3, iterations=ITERATIONS)


# ---------------------------------------------------------------- EML
def test_eml_scores_equal_keypoint_moseqs(checkpoints):
    import keypoint_moseq as kpms
    from kpms_flow.selection import eml_scores

    expected_scores, expected_errors = kpms.expected_marginal_likelihoods(
        checkpoint_paths=[str(p) for p in checkpoints]
    )
    assert np.all(expected_errors > 0)  # the models differ: a real comparison
    scores, errors = eml_scores(checkpoints)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-10)
    np.testing.assert_allclose(errors, expected_errors, rtol=1e-8)
    # One segment per call: the same sum, grouped differently.
    scores, errors = eml_scores(checkpoints, frames_per_call=1)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-10)
    np.testing.assert_allclose(errors, expected_errors, rtol=1e-8)


def test_eml_needs_two_models(checkpoints):
    from kpms_flow.selection import eml_scores

    with pytest.raises(ValueError, match="at least 2 models"):
        eml_scores(checkpoints[:1])


def test_eml_refuses_checkpoints_of_other_data(checkpoints, tmp_path):
    from kpms_flow.selection import eml_scores

    data, metadata = synthetic_data(session_frames=(300,))
    other = write_checkpoint(tmp_path / "other.h5", data, metadata, {3: synthetic_model(data, seed=7)})
    with pytest.raises(ValueError, match=rf"{other}: its data mask has shape"):
        eml_scores([*checkpoints, other])


# ---------------------------------------------------------------- stability
def test_restart_labels_are_the_syllables_extract_results_delivers(checkpoints):
    import keypoint_moseq as kpms
    from kpms_flow.stability import restart_labels

    model, _, metadata, iteration = kpms.load_checkpoint(path=str(checkpoints[1]))
    assert iteration == ITERATIONS[-1]
    results = kpms.extract_results(model, metadata, save_results=False)
    expected = np.concatenate([results[key]["syllable"] for key in sorted(results)])
    labels = restart_labels(checkpoints[1])
    assert labels.shape == (400 + 250,)  # every frame of both sessions, once
    assert np.array_equal(labels, expected)


def test_nmi_of_identical_and_relabelled_labels_is_one():
    from kpms_flow.stability import pairwise_nmi

    rng = np.random.default_rng(0)
    a = rng.integers(0, 8, 2000)
    relabelled = rng.permutation(8)[a]
    unrelated = rng.integers(0, 8, 2000)
    table = pairwise_nmi({"r0": a, "r1": a.copy(), "r2": relabelled, "r3": unrelated})
    assert list(table.columns) == ["restart_a", "restart_b", "nmi"]
    assert len(table) == 6
    nmi = {(row.restart_a, row.restart_b): row.nmi for row in table.itertuples()}
    assert nmi[("r0", "r1")] == pytest.approx(1.0)
    assert nmi[("r0", "r2")] == pytest.approx(1.0)
    assert nmi[("r0", "r3")] < 0.05


def test_pairwise_nmi_refuses_labels_of_different_lengths():
    from kpms_flow.stability import pairwise_nmi

    with pytest.raises(ValueError, match="different numbers of frames"):
        pairwise_nmi({"a": np.zeros(5, int), "b": np.zeros(6, int)})


def test_syllable_reproducibility_on_a_hand_made_case():
    from kpms_flow.stability import syllable_reproducibility

    chosen = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    # b: syllable 0 -> 5 exactly (J = 1); 1 -> 7, which covers 3 of its 4 frames and one
    # more frame: J = 3 / (4 + 4 - 3) = 3/5.
    b = np.array([5, 5, 5, 5, 7, 7, 7, 8, 7, 8])
    # c: everything one label: syllable 0's best J = 4/10, 1's = 4/10, 2's = 2/10.
    c = np.zeros(10, int)
    table = syllable_reproducibility({"a": chosen, "b": b, "c": c}, "a", min_frequency=0.25)
    # Syllable 2 (20 % of frames) is below min_frequency; 0 and 1 tie at 40 % (stable order).
    assert list(table["syllable"]) == [0, 1]
    assert list(table["frequency"]) == pytest.approx([0.4, 0.4])
    assert list(table["match_b"]) == [5, 7]
    assert list(table["jaccard_b"]) == pytest.approx([1.0, 3 / 5])
    assert list(table["match_c"]) == [0, 0]
    assert list(table["jaccard_c"]) == pytest.approx([0.4, 0.4])
    assert list(table["reproduced_in"]) == [1, 1]
    assert list(table["other_restarts"]) == [2, 2]
    # Reproduced in 1 of 2 other restarts: not in most of them.
    assert list(table["reproduced"]) == [False, False]
    table = syllable_reproducibility({"a": chosen, "b": b}, "a", min_frequency=0.1)
    assert list(table["syllable"]) == [0, 1, 2]
    # 2 -> best of 7 (J = 1/5) and 8 (|A&B| = 1, |A|B| = 2 + 2 - 1 = 3: J = 1/3).
    assert table["match_b"].iloc[2] == 8
    assert table["jaccard_b"].iloc[2] == pytest.approx(1 / 3)
    assert list(table["reproduced"]) == [True, True, False]


# ---------------------------------------------------------------- convergence
def test_convergence_trace_has_one_row_per_snapshot_with_jax_moseqs_likelihood(checkpoints):
    import keypoint_moseq as kpms
    from jax_moseq.models.keypoint_slds import model_likelihood
    from kpms_flow.convergence import convergence_trace

    trace = convergence_trace(checkpoints[0])
    assert list(trace.columns) == ["iteration", "log_likelihood"]
    assert list(trace["iteration"]) == list(ITERATIONS)
    model, data, _, _ = kpms.load_checkpoint(path=str(checkpoints[0]), iteration=5)
    expected = sum(float(v) for v in model_likelihood(data, **model).values())
    assert trace.loc[trace["iteration"] == 5, "log_likelihood"].item() == pytest.approx(expected)
    assert trace["log_likelihood"].nunique() == len(ITERATIONS)  # each snapshot scored


def _trace(values):
    return pd.DataFrame({"iteration": np.arange(len(values)) * 25, "log_likelihood": values})


def test_still_trending_on_a_rising_trace_not_on_a_flat_noisy_one():
    from kpms_flow.convergence import still_trending

    rng = np.random.default_rng(1)
    noise = rng.normal(scale=50.0, size=40)
    # Burn-in then a plateau: flat and noisy at the end.
    plateau = -1e5 + 2e4 * (1 - np.exp(-np.arange(40) / 4)) + noise
    assert not still_trending(_trace(plateau))
    # Still climbing at the end, by more than the noise.
    rising = -1e5 + 200.0 * np.arange(40) + noise
    assert still_trending(_trace(rising))
    # Falling counts too: a drift either way is not an equilibrium.
    assert still_trending(_trace(-1e5 - 200.0 * np.arange(40) + noise))
    # Pure noise, no trend at all.
    assert not still_trending(_trace(-1e5 + noise))
    # Too few snapshots to tell.
    assert not still_trending(_trace([-3.0, -2.0]))


# ---------------------------------------------------------------- the choice
def test_choose_is_the_argmax_and_the_window_note():
    from kpms_flow.selection import choose, window_note

    table = pd.DataFrame(
        {
            "restart": ["restart_0", "restart_1", "restart_2"],
            "eml": [-10.0, -3.0, -7.0],
            "median_duration_ms": [350.0, 500.0, 380.0],
        }
    )
    assert choose(table) == "restart_1"
    note = window_note(table, "restart_1", [300, 400])
    assert "restart_1" in note and "500 ms" in note and "restart_0, restart_2" in note
    assert window_note(table, "restart_0", [300, 400]) is None  # chosen inside
    assert window_note(table, "restart_1", None) is None  # no window
    assert window_note(table, "restart_1", [450, 600]) is None  # nobody else inside


# ---------------------------------------------------------------- the rule's outputs
def test_select_writes_every_output_and_links_the_argmax(checkpoints, tmp_path):
    import keypoint_moseq as kpms
    from kpms_flow.model import save_training_data
    from kpms_flow.selection import _select, summary_lines

    _, data, metadata, _ = kpms.load_checkpoint(path=str(checkpoints[0]))
    data_path = tmp_path / "data.h5"
    save_training_data(data_path, data, metadata, ["a", "b", "c", "d", "e"], 30.0, ["session_0", "session_1"])
    metrics = []
    for k, duration in enumerate([350.0, 420.0, 380.0]):
        path = tmp_path / f"metrics_{k}.tsv"
        pd.DataFrame(
            [{"stage": "full_model", "kappa": 1e4 * (k + 1), "median_duration_ms": duration, "syllables": 5 + k}]
        ).to_csv(path, sep="\t", index=False)
        metrics.append(path)
    names = ["restart_0", "restart_1", "restart_2"]
    out = {
        key: tmp_path / "selection" / name
        for key, name in [
            ("eml", "eml.tsv"), ("eml_plot", "eml.png"), ("stability", "stability.tsv"),
            ("pairwise", "pairwise_nmi.tsv"), ("stability_plot", "stability.png"),
            ("convergence", "convergence.tsv"), ("convergence_plot", "convergence.png"),
            ("chosen", "chosen_checkpoint.h5"),
        ]
    }
    smk = SimpleNamespace(
        input=SimpleNamespace(checkpoints=[str(p) for p in checkpoints], metrics=metrics, data=str(data_path)),
        output=SimpleNamespace(**{k: str(v) for k, v in out.items()}),
        params=SimpleNamespace(restarts=names, seeds=[11, 12, 13], target_duration_ms=[300, 400]),
    )
    _select(smk)

    expected_scores, _ = kpms.expected_marginal_likelihoods(checkpoint_paths=[str(p) for p in checkpoints])
    eml = pd.read_csv(out["eml"], sep="\t")
    assert list(eml.columns) == [
        "restart", "seed", "kappa", "eml", "eml_std_err", "median_duration_ms",
        "in_target_window", "syllables", "chosen",
    ]
    assert list(eml["restart"]) == names and list(eml["seed"]) == [11, 12, 13]
    np.testing.assert_allclose(eml["eml"], expected_scores, rtol=1e-10)
    winner = int(np.argmax(expected_scores))
    assert list(eml["chosen"]) == [k == winner for k in range(3)]
    assert list(eml["in_target_window"]) == [True, False, True]
    # a copy (its own file: Snakemake's touch of an output must not reach the input)
    assert Path(out["chosen"]).read_bytes() == Path(checkpoints[winner]).read_bytes()
    assert not os.path.samefile(out["chosen"], checkpoints[winner])

    pairwise = pd.read_csv(out["pairwise"], sep="\t")
    assert len(pairwise) == 3 and pairwise["nmi"].between(0, 1).all()
    stability = pd.read_csv(out["stability"], sep="\t")
    others = [n for k, n in enumerate(names) if k != winner]
    assert [c for c in stability.columns if c.startswith("jaccard_")] == [f"jaccard_{n}" for n in others]
    convergence = pd.read_csv(out["convergence"], sep="\t")
    assert list(convergence.columns) == ["restart", "iteration", "log_likelihood", "still_trending"]
    assert len(convergence) == 3 * len(ITERATIONS)
    for key in ("eml_plot", "stability_plot", "convergence_plot"):
        assert out[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", key

    lines = summary_lines(eml, pairwise, stability, convergence, [300, 400])
    assert lines[0] == f"chosen model: {names[winner]} of 3 restarts (highest EML)"
    median = f"median pairwise NMI between restarts {pairwise['nmi'].median():.2f}"
    assert any(median in line for line in lines), lines
    assert any("3 saved iterations per fit are too few" in line for line in lines), lines


def test_select_refuses_mismatched_inputs(checkpoints, tmp_path):
    from kpms_flow.selection import _select

    smk = SimpleNamespace(
        input=SimpleNamespace(checkpoints=[str(p) for p in checkpoints], metrics=[], data="unused.h5"),
        output=SimpleNamespace(eml=str(tmp_path / "eml.tsv")),
        params=SimpleNamespace(restarts=["restart_0"], seeds=[1], target_duration_ms=None),
    )
    with pytest.raises(ValueError, match="one of each per restart"):
        _select(smk)
    assert not (tmp_path / "eml.tsv").exists()
