"""Tests of the synthetic demo generator (kpms_flow.demo) and the evaluation metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kpms_flow import demo, demo_model, metrics

N_SESSIONS, N_FRAMES = 3, 600


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "data"
    demo.generate_demo(out, n_sessions=N_SESSIONS, n_frames=N_FRAMES, seed=0, n_heldout=1,
                       videos=True)
    return out


def _read_pose(path) -> pd.DataFrame:
    return pd.read_hdf(path, key="df_with_missing")


def _all_arrays(out: Path) -> list[np.ndarray]:
    table = pd.read_csv(out / "sessions.tsv", sep="\t")
    arrays = []
    for session, path in zip(table["session"], table["path"]):
        arrays.append(_read_pose(path).to_numpy())
        arrays.append(demo.load_ground_truth(out, session))
    return arrays


def test_files_exist(demo_dir):
    for i in range(N_SESSIONS):
        name = demo.session_name(i)
        assert (demo_dir / "pose" / f"{name}DLC_resnet50_demoSep1shuffle1_1000.h5").is_file()
        assert (demo_dir / "ground_truth" / f"{name}.csv").is_file()
    assert (demo_dir / "sessions.tsv").is_file()
    params = json.loads((demo_dir / "ground_truth" / "params.json").read_text())
    assert params["seed"] == 0 and params["n_states"] == 5
    assert len(params["mean_durations_frames"]) == 5
    d, nlags = params["latent_dim"], params["nlags"]
    assert np.array(params["Ab"]).shape == (5, d, d * nlags + 1)
    assert max(params["spectral_radius"]) < 1
    assert not list(demo_dir.rglob(".*.tmp")), "temporary files left behind"


def test_dlc_layout(demo_dir):
    df = _read_pose(demo_dir / "pose" / demo.pose_filename("demo_01"))
    assert list(df.columns.names) == ["scorer", "bodyparts", "coords"]
    assert df.columns.get_level_values("scorer").unique().tolist() == [demo.SCORER]
    assert df.columns.get_level_values("bodyparts").unique().tolist() == demo.BODYPARTS
    assert df.columns.get_level_values("coords")[:3].tolist() == ["x", "y", "likelihood"]
    assert df.shape == (N_FRAMES, 3 * len(demo.BODYPARTS))
    lik = df.xs("likelihood", axis=1, level="coords").to_numpy()
    x = df.xs("x", axis=1, level="coords").to_numpy()
    assert np.all((lik > 0) & (lik <= 1))
    assert np.all(lik[np.isnan(x)] <= 0.1)
    # Most detections are confident; coordinates stay near the 500 px arena.
    # Regular points: log10(likelihood) = -0.5 * Beta(1, 3), i.e. 0.32..1, median ~0.79.
    assert np.mean(lik >= 10**-demo_model.LIKELIHOOD_LOG10_SPREAD) > 0.95
    assert 0.7 < np.median(lik) < 0.85
    assert np.nanmin(x) > -200 and np.nanmax(x) < 700


def test_keypoint_moseq_loader(demo_dir):
    kpms = pytest.importorskip("keypoint_moseq")
    path = demo_dir / "pose" / demo.pose_filename("demo_02")
    coordinates, confidences, bodyparts = kpms.load_keypoints(str(path), "deeplabcut")
    assert bodyparts == demo.BODYPARTS
    (coords,) = coordinates.values()
    (conf,) = confidences.values()
    assert coords.shape == (N_FRAMES, 7, 2)
    assert conf.shape == (N_FRAMES, 7)


def test_ground_truth(demo_dir):
    states = {demo.session_name(i): demo.load_ground_truth(demo_dir, demo.session_name(i))
              for i in range(N_SESSIONS)}
    for s in states.values():
        assert s.shape == (N_FRAMES,)
        assert s.dtype.kind == "i"
    # Also loadable from the ground_truth directory itself.
    np.testing.assert_array_equal(
        demo.load_ground_truth(demo_dir / "ground_truth", "demo_01"), states["demo_01"]
    )
    pooled = np.concatenate(list(states.values()))
    assert set(np.unique(pooled)) == set(range(5))
    assert 6 <= metrics.median_duration_frames(states) <= 20


def test_nan_fraction(demo_dir):
    for path in (demo_dir / "pose").glob("*.h5"):
        x = _read_pose(path).xs("x", axis=1, level="coords").to_numpy()
        assert 0.005 <= np.isnan(x).mean() <= 0.10


def test_sessions_table(demo_dir):
    table = pd.read_csv(demo_dir / "sessions.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(table.columns) == [
        "session", "path", "format", "animal", "fps", "group", "train", "video"
    ]
    assert table["session"].tolist() == ["demo_01", "demo_02", "demo_03"]
    assert table["train"].tolist() == ["true", "true", "false"]
    assert table["group"].tolist() == ["A", "B", "A"]
    assert set(table["format"]) == {"deeplabcut"}
    assert set(table["fps"]) == {"30"}
    assert set(table["animal"]) == {""}
    assert table["video"].tolist() == [str(demo_dir / "video" / f"{s}.mp4") for s in table["session"]]
    for path in table["path"]:
        assert path.startswith(str(demo_dir / "pose"))
        assert Path(path).is_file()


def test_relative_out_dir_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = demo.generate_demo("demo/data", n_sessions=2, n_frames=100, n_heldout=0)
    assert table["path"].tolist()[0] == str(Path("demo/data/pose") / demo.pose_filename("demo_01"))
    assert table["train"].tolist() == ["true", "true"]
    assert Path(table["path"][1]).is_file()


def test_videos_show_the_true_pose(demo_dir):
    cv2 = pytest.importorskip("cv2")
    model = demo.sample_true_model(0)
    seeds = np.random.SeedSequence([0, 1]).spawn(N_SESSIONS)
    clean = demo.simulate_session(model, np.random.default_rng(seeds[0]), N_FRAMES)["clean"]
    video = cv2.VideoCapture(str(demo_dir / "video" / "demo_01.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == N_FRAMES
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    for frame_index in (0, N_FRAMES // 2, N_FRAMES - 1):
        video.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
        ok, frame = video.read()
        assert ok and frame.shape == (500, 500, 3)
        # Bright where the animal is (each keypoint's pixel), dark background elsewhere.
        x, y = np.round(clean[frame_index]).astype(int).T
        assert frame[y, x].max(axis=1).min() > 100
        assert np.median(frame) < 50
    video.release()


def test_determinism(demo_dir, tmp_path):
    # The fixture also drew videos: the keypoints do not depend on it.
    same = tmp_path / "same"
    other = tmp_path / "other"
    demo.generate_demo(same, n_sessions=N_SESSIONS, n_frames=N_FRAMES, seed=0, n_heldout=1)
    demo.generate_demo(other, n_sessions=N_SESSIONS, n_frames=N_FRAMES, seed=1, n_heldout=1)
    for a, b in zip(_all_arrays(demo_dir), _all_arrays(same)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_all_arrays(demo_dir), _all_arrays(other)):
        assert not np.array_equal(a, b, equal_nan=True)


def test_sessions_differ_and_share_model():
    model = demo.sample_true_model(0)
    a = demo.simulate_session(model, np.random.default_rng(1), 200)
    b = demo.simulate_session(model, np.random.default_rng(2), 200)
    assert not np.array_equal(a["states"], b["states"])
    np.testing.assert_array_equal(model["Ab"], demo.sample_true_model(0)["Ab"])


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        demo.generate_demo(tmp_path, n_sessions=2, n_heldout=2)
    with pytest.raises(SystemExit):
        demo.main(["--out", str(tmp_path), "--sessions", "0"])


def test_cli(tmp_path):
    assert demo.main(["--out", str(tmp_path / "d"), "--sessions", "2", "--frames", "50",
                      "--seed", "3", "--heldout", "0"]) == 0
    table = pd.read_csv(tmp_path / "d" / "sessions.tsv", sep="\t")
    assert len(table) == 2
    assert len(demo.load_ground_truth(tmp_path / "d", "demo_02")) == 50


# --------------------------------------------------------------------------- metrics


def _structured_labels(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    durations = rng.integers(5, 30, size=n)
    labels = np.repeat(rng.integers(0, 5, size=n), durations)
    return labels[:n]


def test_nmi_identical_and_permuted():
    labels = _structured_labels()
    assert metrics.nmi(labels, labels) == pytest.approx(1.0)
    perm = np.array([3, 0, 4, 1, 2])
    assert metrics.nmi(labels, perm[labels] + 10) == pytest.approx(1.0)


def test_nmi_ignores_missing():
    labels = _structured_labels(500)
    pred = labels.copy()
    pred[::7] = -1  # missing frames must not lower agreement
    assert metrics.nmi(labels, pred) == pytest.approx(1.0)
    as_float = labels.astype(float)
    as_float[::5] = np.nan
    assert metrics.nmi(as_float, labels) == pytest.approx(1.0)
    assert np.isnan(metrics.nmi([-1, -1], [0, 1]))
    with pytest.raises(ValueError):
        metrics.nmi([0, 1, 2], [0, 1])


def test_shuffled_nmi_is_low():
    labels = _structured_labels()
    value = metrics.shuffled_nmi(labels, labels, seed=0)
    assert value < 0.1
    assert metrics.shuffled_nmi(labels, labels, seed=0) == value  # deterministic


def test_median_duration_frames():
    a = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])  # runs 3, 2, 5
    b = np.array([2, 2, 2, 2, 1, 1, 1])  # runs 4, 3; not merged with a's last run
    assert metrics.median_duration_frames({"a": a, "b": b}) == 3.0
    assert metrics.median_duration_frames({"a": a}) == 3.0
    # A missing frame splits a run and is not a run itself: runs 2, 1, 4.
    c = np.array([0, 0, -1, 0, 3, 3, 3, 3])
    assert metrics.median_duration_frames({"c": c}) == 2.0
    np.testing.assert_array_equal(metrics.run_lengths(c), [2, 1, 4])
    assert np.isnan(metrics.median_duration_frames({}))


def test_noise_model_and_labels_recover_the_error_estimator(tmp_path):
    """The demo's noise grows as the likelihood falls with a known slope and intercept, and
    its DeepLabCut labels give them back through the pipeline's calibration (the same
    numbers as the full demo's summary reports, there from 5 sessions of 1800 frames)."""
    from kpms_flow.calibration import calibrate, session_track
    from kpms_flow.formats import load_session

    out = tmp_path / "data"
    table = demo.generate_demo(out, n_sessions=2, n_frames=N_FRAMES, seed=0, n_heldout=0)
    tracks = {}
    for row in table.itertuples():
        kp = load_session(row.path, "deeplabcut", row.session)
        tracks[row.session] = session_track(kp, row.video)
    paths = [demo.labels_path(out, s) for s in table["session"]]
    labels = pd.read_hdf(paths[0])
    assert labels.index[0][:2] == ("labeled-data", "demo_01")
    assert len(labels) == demo.LABELLED_FRAMES
    estimator, annotations = calibrate(paths, tracks, conf_pseudocount=1e-3, conf_threshold=0.5)
    # ~280 labelled points over likelihoods 0.3..1: standard errors ~0.05 (slope), ~0.01.
    assert estimator["n_annotations"] > 200
    assert estimator["slope"] == pytest.approx(demo_model.ERROR_SLOPE, abs=0.15)
    assert estimator["intercept"] == pytest.approx(demo_model.ERROR_INTERCEPT, abs=0.03)
    params = json.loads((out / "ground_truth" / "params.json").read_text())
    assert (params["error_slope"], params["error_intercept"]) == (demo_model.ERROR_SLOPE, demo_model.ERROR_INTERCEPT)


def test_labels_leave_the_keypoints_unchanged(tmp_path):
    """Labels come from their own seeds: the pose files are the same without them."""
    with_labels = demo.generate_demo(tmp_path / "a", n_sessions=1, n_frames=200, n_heldout=0)
    without = demo.generate_demo(tmp_path / "b", n_sessions=1, n_frames=200, n_heldout=0,
                                 n_labelled_frames=0)
    assert not demo.labels_path(tmp_path / "b", "demo_01").exists()
    np.testing.assert_array_equal(
        _read_pose(with_labels["path"][0]).to_numpy(), _read_pose(without["path"][0]).to_numpy()
    )
