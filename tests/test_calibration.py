"""Noise calibration (kpms_flow.calibration, rule noise_calibration): labels read from
keypoint-moseq's, DeepLabCut's and SLEAP's files, the error model fitted as keypoint-moseq's
widget fits it, bad input refused, and the rule wired into the fits (one dry run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kpms_flow.calibration import (
    ANNOTATION_COLUMNS,
    CalibrationError,
    SessionTrack,
    annotated_sessions,
    annotation_errors,
    calibrate,
    catalog_entry,
    fit_error_estimator,
    read_annotations,
    read_error_estimator,
)

BODYPARTS = ["nose", "neck", "tailbase"]
PSEUDOCOUNT = 1e-3
TRUE_SLOPE, TRUE_INTERCEPT = -0.45, 0.35


def make_tracks(n_frames=200, seed=0) -> dict[str, SessionTrack]:
    """Two sessions (videos vidA, vidB) with confidences spread over 0.01..1."""
    rng = np.random.default_rng(seed)
    tracks = {}
    for session, video in [("s1", "vidA"), ("s2", "vidB")]:
        track = catalog_entry(session, f"pose/{video}DLC_resnet50_xShuffle1.h5", f"video/{video}.mp4")
        track.coordinates = rng.uniform(50, 450, size=(n_frames, len(BODYPARTS), 2))
        track.confidences = 10 ** rng.uniform(-2, 0, size=(n_frames, len(BODYPARTS)))
        track.bodyparts = list(BODYPARTS)
        tracks[session] = track
    return tracks


def synthetic_annotations(tracks, n=400, noise=0.03, seed=1) -> pd.DataFrame:
    """Labels whose log10(error + 1) is TRUE_SLOPE * log10(conf) + TRUE_INTERCEPT + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    keys = sorted(tracks)
    for _ in range(n):
        track = tracks[keys[rng.integers(len(keys))]]
        t, k = int(rng.integers(track.n_frames)), int(rng.integers(len(BODYPARTS)))
        log_conf = np.log10(track.confidences[t, k] + PSEUDOCOUNT)
        error = 10 ** (TRUE_SLOPE * log_conf + TRUE_INTERCEPT + rng.normal(0, noise)) - 1
        angle = rng.uniform(0, 2 * np.pi)
        x, y = track.coordinates[t, k] + error * np.array([np.cos(angle), np.sin(angle)])
        rows.append((track.session, t, t, BODYPARTS[k], x, y))
    return pd.DataFrame(rows, columns=ANNOTATION_COLUMNS)


def write_kpms_csv(path: Path, table: pd.DataFrame) -> Path:
    """keypoint-moseq's own writer (save_annotations) makes the file."""
    from keypoint_moseq.calibration import save_annotations

    path.mkdir(parents=True, exist_ok=True)
    save_annotations(
        str(path),
        {(r.key, r.coordinate_index, r.bodypart): (r.x, r.y) for r in table.itertuples()},
        {k: np.arange(10_000) for k in set(table["key"])},
    )
    return path / "error_annotations.csv"


def write_collected_data(folder: Path, table: pd.DataFrame, video: str, suffix=".h5",
                         index_video=None, flat_index=False) -> Path:
    """A DeepLabCut labelled-frames file as DeepLabCut 2.2+ writes it (``flat_index``: as
    older versions did, one 'labeled-data/<video>/img<frame>.png' string per row)."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = sorted(set(table["coordinate_index"]))
    index = pd.MultiIndex.from_tuples(
        [("labeled-data", index_video or video, f"img{f:04d}.png") for f in frames]
    )
    columns = pd.MultiIndex.from_product(
        [["alice"], BODYPARTS, ["x", "y"]], names=["scorer", "bodyparts", "coords"]
    )
    df = pd.DataFrame(np.nan, index=index, columns=columns)
    for r in table.itertuples():
        row = index[frames.index(r.coordinate_index)]
        df.loc[row, ("alice", r.bodypart, "x")] = r.x
        df.loc[row, ("alice", r.bodypart, "y")] = r.y
    if flat_index:
        df.index = ["/".join(row) for row in df.index]
    path = folder / f"CollectedData_alice{suffix}"
    if suffix == ".h5":
        df.to_hdf(path, key="keypoints", mode="w")
    else:
        df.to_csv(path)
    return path


def as_set(table: pd.DataFrame):
    return {
        (r.key, int(r.coordinate_index), int(r.video_frame_index), r.bodypart, round(r.x, 6), round(r.y, 6))
        for r in table[ANNOTATION_COLUMNS].itertuples()
    }


# ------------------------------------------------------------------------------ fitting
def test_fit_recovers_known_slope_and_intercept():
    tracks = make_tracks()
    table = synthetic_annotations(tracks, n=400, noise=0.03)
    log_conf, log_error, used = annotation_errors(table, tracks, PSEUDOCOUNT)
    assert used.all()
    slope, intercept = fit_error_estimator(log_conf, log_error)
    # 400 points, noise 0.03 over 2 decades of confidence: standard errors ~0.003.
    assert abs(slope - TRUE_SLOPE) < 0.02
    assert abs(intercept - TRUE_INTERCEPT) < 0.02


def test_fit_equals_keypoint_moseq_widget(tmp_path):
    """keypoint-moseq's own widget, clicked on the same points, fits the same line and
    writes an error_annotations.csv that calibrate() reads to the same estimator."""
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    import keypoint_moseq as kpms
    import matplotlib.pyplot as plt
    from keypoint_moseq.calibration import _noise_calibration_widget
    from matplotlib.backend_bases import MouseEvent

    tracks = make_tracks(n_frames=60)
    table = synthetic_annotations(tracks, n=30).drop_duplicates(["key", "coordinate_index", "bodypart"])
    project = tmp_path / "project"
    kpms.setup_project(str(project), bodyparts=BODYPARTS, use_bodyparts=BODYPARTS)
    coordinates = {k: t.coordinates for k, t in tracks.items()}
    # noise_calibration adds the pseudocount before handing confidences to the widget.
    confidences = {k: t.confidences + PSEUDOCOUNT for k, t in tracks.items()}
    keys = [(r.key, int(r.coordinate_index), r.bodypart) for r in table.itertuples()]
    images = {key: np.zeros((8, 8, 3), np.uint8) for key in keys}
    estimator = {}
    plt.close("all")
    ui = _noise_calibration_widget(
        str(project), coordinates, confidences, keys, images, bodyparts=BODYPARTS,
        video_frame_indexes={k: np.arange(60) for k in tracks}, error_estimator=estimator,
        conf_threshold=0.5,
    )
    canvas = plt.gcf().canvas
    next_button = ui.children[0].children[1]
    for r in table.itertuples():  # click each true position, then "Next"
        click = MouseEvent("button_press_event", canvas, 0, 0, button=1)
        click.xdata, click.ydata = r.x, r.y  # data coordinates, whatever the pixel scale
        canvas.callbacks.process("button_press_event", click)
        next_button.click()
    assert {"slope", "intercept"} <= set(estimator)

    ours, annotations = calibrate([project / "error_annotations.csv"], tracks, PSEUDOCOUNT, 0.5)
    assert len(annotations) == len(table)
    assert ours["slope"] == pytest.approx(estimator["slope"], rel=1e-12, abs=1e-12)
    assert ours["intercept"] == pytest.approx(estimator["intercept"], rel=1e-12, abs=1e-12)


def test_calibrate_writes_nothing_and_reports_counts():
    tracks = make_tracks()
    table = synthetic_annotations(tracks, n=50).drop_duplicates(["key", "coordinate_index", "bodypart"])
    table = table.reset_index(drop=True)
    # A point the tracker did not report has no error: left out, not a NaN fit.
    first = table.iloc[0]
    tracks[first.key].coordinates[first.coordinate_index, BODYPARTS.index(first.bodypart)] = np.nan
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = write_kpms_csv(Path(tmp), table)
        before = sorted(Path(tmp).iterdir())
        estimator, annotations = calibrate([path], tracks, PSEUDOCOUNT, 0.7)
        assert sorted(Path(tmp).iterdir()) == before
    expected = len(table) - 1
    assert estimator["n_annotations"] == expected
    assert estimator["conf_threshold"] == 0.7
    assert annotations["log10_error"].notna().sum() == expected


def test_read_error_estimator_roundtrip(tmp_path):
    path = tmp_path / "error_estimator.tsv"
    pd.DataFrame([{"slope": -0.4, "intercept": 0.3, "conf_threshold": 0.5, "n_annotations": 40}]).to_csv(
        path, sep="\t", index=False
    )
    assert read_error_estimator(path) == {"slope": -0.4, "intercept": 0.3}
    (tmp_path / "bad.tsv").write_text("slope\n1\n")
    with pytest.raises(CalibrationError, match="bad.tsv"):
        read_error_estimator(tmp_path / "bad.tsv")


def test_kpms_config_reads_calibrated_estimator(tmp_path):
    from kpms_flow.config import kpms_config

    path = tmp_path / "error_estimator.tsv"
    pd.DataFrame([{"slope": -0.4, "intercept": 0.3, "conf_threshold": 0.5, "n_annotations": 40}]).to_csv(
        path, sep="\t", index=False
    )
    config = {
        "anterior_bodyparts": ["nose"], "posterior_bodyparts": ["tailbase"],
        "conf_pseudocount": 1e-3, "added_noise_level": 0.1, "use_bodyparts": None,
    }
    default = kpms_config(dict(config, error_estimator={"slope": -0.5, "intercept": 0.25}), BODYPARTS)
    assert default["error_estimator"] == {"slope": -0.5, "intercept": 0.25}
    calibrated = kpms_config(dict(config, error_estimator={"calibrated": str(path)}), BODYPARTS)
    assert calibrated["error_estimator"] == {"slope": -0.4, "intercept": 0.3}


def test_run_summary_compares_recovered_with_true_noise_model(tmp_path):
    import json

    from kpms_flow.summary import calibration_summary, format_summary

    estimator = tmp_path / "error_estimator.tsv"
    pd.DataFrame([{"slope": -0.5047, "intercept": 0.3798, "conf_threshold": 0.5, "n_annotations": 685}]).to_csv(
        estimator, sep="\t", index=False
    )
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"error_slope": -0.5, "error_intercept": 0.38}))
    values = calibration_summary(estimator, params)
    assert values == {
        "calibration_slope": -0.5047, "calibration_intercept": 0.3798, "calibration_annotations": 685,
        "true_error_slope": -0.5, "true_error_intercept": 0.38,
    }
    summary = {
        "training_sessions": 4, "applied_sessions": 1, "excluded_sessions": 0, "latent_dim": 4,
        "median_duration_frames": 9.0, "fps": 30.0, "median_duration_ms": 300.0, "syllables_used": 8,
        **values,
    }
    text = format_summary(summary)
    assert "noise calibration: slope -0.505, intercept 0.380 from 685 annotations (generator's: -0.500, 0.380)" in text
    without_truth = {k: v for k, v in summary.items() if not k.startswith("true_")}
    assert calibration_summary(estimator, tmp_path / "none.json").keys() == without_truth.keys() - {
        "training_sessions", "applied_sessions", "excluded_sessions", "latent_dim",
        "median_duration_frames", "fps", "median_duration_ms", "syllables_used",
    }
    assert "generator" not in format_summary(without_truth)


# ------------------------------------------------------------------------------ readers
def test_reads_keypoint_moseq_csv(tmp_path):
    tracks = make_tracks()
    table = synthetic_annotations(tracks, n=30)
    path = write_kpms_csv(tmp_path, table)
    assert as_set(read_annotations(path, tracks)) == as_set(table)


@pytest.mark.parametrize("suffix,flat_index", [(".h5", False), (".csv", False), (".h5", True), (".csv", True)])
def test_reads_deeplabcut_labelled_frames(tmp_path, suffix, flat_index):
    tracks = make_tracks()
    table = synthetic_annotations(tracks, n=60)
    table = table[table["key"] == "s1"].drop_duplicates(["coordinate_index", "bodypart"])
    path = write_collected_data(tmp_path / "labeled-data" / "vidA", table, "vidA", suffix, flat_index=flat_index)
    read = read_annotations(path, tracks)
    assert as_set(read) == as_set(table)
    assert annotated_sessions([path], tracks) == ["s1"]
    # Matched by folder name before the file exists (a job, like the demo's, may make it).
    assert annotated_sessions([tmp_path / "labeled-data" / "vidB" / "CollectedData_x.h5"], tracks) == ["s2"]


def test_deeplabcut_labels_match_sessions_by_pose_file_name(tmp_path):
    """Without a video column, DeepLabCut's own output name <video>DLC_... matches."""
    tracks = make_tracks()
    tracks["s1"].video_names = ["s1"]  # no video in the sessions table
    table = synthetic_annotations(tracks, n=40)
    table = table[table["key"] == "s1"].drop_duplicates(["coordinate_index", "bodypart"])
    path = write_collected_data(tmp_path / "labeled-data" / "vidA", table, "vidA")
    assert set(read_annotations(path, tracks)["key"]) == {"s1"}


@pytest.mark.parametrize("suffix", [".h5", ".csv"])
def test_reads_multi_animal_deeplabcut_labels_by_individual(tmp_path, suffix):
    """A multi-animal project: each individual's labels go to the session whose 'animal'
    it is (both sessions tracked on one video); DeepLabCut's 'single' (unique bodyparts)
    is no animal's; an individual that is no session's animal is refused."""
    tracks = make_tracks()
    for session, animal in [("s1", "m1"), ("s2", "m2")]:
        tracks[session].video_names = ["vidM", session]
        tracks[session].animal = animal
    table = synthetic_annotations(tracks, n=60).drop_duplicates(["key", "coordinate_index", "bodypart"])
    frames = sorted(set(table["coordinate_index"]))
    index = pd.MultiIndex.from_tuples([("labeled-data", "vidM", f"img{f:04d}.png") for f in frames])
    columns = pd.MultiIndex.from_tuples(
        [("alice", ind, bp, c) for ind in ["m1", "m2"] for bp in BODYPARTS for c in "xy"]
        + [("alice", "single", "arena_corner", c) for c in "xy"],
        names=["scorer", "individuals", "bodyparts", "coords"],
    )
    df = pd.DataFrame(np.nan, index=index, columns=columns)
    df[("alice", "single", "arena_corner", "x")] = 1.0
    df[("alice", "single", "arena_corner", "y")] = 2.0
    for r in table.itertuples():
        animal = tracks[r.key].animal
        row = index[frames.index(r.coordinate_index)]
        df.loc[row, ("alice", animal, r.bodypart, "x")] = r.x
        df.loc[row, ("alice", animal, r.bodypart, "y")] = r.y
    folder = tmp_path / "labeled-data" / "vidM"
    folder.mkdir(parents=True)
    path = folder / f"CollectedData_alice{suffix}"
    df.to_hdf(path, key="keypoints", mode="w") if suffix == ".h5" else df.to_csv(path)
    assert as_set(read_annotations(path, tracks)) == as_set(table)
    tracks["s2"].animal = "other"
    with pytest.raises(CalibrationError, match=r"labels for unknown session: labelled animal 'm2' of video 'vidM'"):
        read_annotations(path, tracks)


def test_reads_sleap_user_instances(tmp_path):
    sio = pytest.importorskip("sleap_io")
    tracks = make_tracks()
    skeleton = sio.Skeleton(list(BODYPARTS))  # it turns list items into Nodes in place
    video = sio.Video(filename=str(tmp_path / "vidB.mp4"), open_backend=False)
    table = synthetic_annotations(tracks, n=80)
    table = table[table["key"] == "s2"].drop_duplicates(["coordinate_index", "bodypart"])
    frames = []
    for frame, rows in table.groupby("coordinate_index"):
        points = np.full((len(BODYPARTS), 2), np.nan)
        for r in rows.itertuples():
            points[BODYPARTS.index(r.bodypart)] = (r.x, r.y)
        # The tracker's own prediction on the frame is no label: left out.
        predicted = sio.PredictedInstance.from_numpy(
            points_data=np.zeros((len(BODYPARTS), 2)), skeleton=skeleton,
            point_scores=np.ones(len(BODYPARTS)), score=1.0,
        )
        instance = sio.Instance.from_numpy(points, skeleton=skeleton)
        frames.append(sio.LabeledFrame(video=video, frame_idx=int(frame), instances=[instance, predicted]))
    path = tmp_path / "labels.slp"
    sio.save_slp(sio.Labels(frames, videos=[video], skeletons=[skeleton]), str(path))
    assert as_set(read_annotations(path, tracks)) == as_set(table)
    assert annotated_sessions([path], tracks) == ["s2"]


# ---------------------------------------------------------------------------- bad input
def test_unknown_session_is_refused(tmp_path):
    tracks = make_tracks()
    table = synthetic_annotations(tracks, n=30)
    table.loc[3, "key"] = "ghost"
    path = write_kpms_csv(tmp_path, table)
    with pytest.raises(CalibrationError, match=rf"{path}: annotations for unknown sessions \['ghost'\]"):
        read_annotations(path, tracks)


def test_labels_of_an_unknown_video_are_refused(tmp_path):
    tracks = make_tracks()
    table = synthetic_annotations(tracks, n=30)
    path = write_collected_data(tmp_path / "labeled-data" / "vidZ", table, "vidZ")
    with pytest.raises(CalibrationError, match=r"CollectedData_alice.h5: labels for unknown session: no session's video is named 'vidZ'"):
        read_annotations(path, tracks)


def test_unknown_bodypart_is_refused(tmp_path):
    tracks = make_tracks()
    table = synthetic_annotations(tracks, n=30)
    table.loc[table["key"] == "s1", "bodypart"] = "tail_tip"
    path = write_kpms_csv(tmp_path, table)
    with pytest.raises(CalibrationError, match=rf"{path}: unknown bodyparts \['tail_tip'\] for session 's1'"):
        read_annotations(path, tracks)


def test_frame_out_of_range_is_refused(tmp_path):
    tracks = make_tracks(n_frames=200)
    table = synthetic_annotations(tracks, n=30)
    table.loc[5, ["coordinate_index", "video_frame_index"]] = 250
    path = write_kpms_csv(tmp_path, table)
    with pytest.raises(CalibrationError, match=rf"{path}: frames out of range for session '{table.loc[5, 'key']}': \[250\] \(it has frames 0..199\)"):
        read_annotations(path, tracks)


def test_too_few_annotations_are_refused(tmp_path):
    tracks = make_tracks()
    path = write_kpms_csv(tmp_path, synthetic_annotations(tracks, n=19))
    with pytest.raises(CalibrationError, match=rf"{path}: too few annotations: 19 usable of 19 \(at least 20"):
        calibrate([path], tracks, PSEUDOCOUNT, 0.5)


def test_labels_from_a_different_video_are_refused(tmp_path):
    """A CollectedData file whose rows name another video than its folder's."""
    tracks = make_tracks()
    table = synthetic_annotations(tracks, n=30)
    path = write_collected_data(tmp_path / "labeled-data" / "vidA", table, "vidA", index_video="vidB")
    with pytest.raises(CalibrationError, match=r"labels from a different video: row 'labeled-data/vidB/img\d+.png' names video 'vidB', but the file is in labeled-data/vidA/"):
        read_annotations(path, tracks)


def test_not_an_annotation_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    with pytest.raises(CalibrationError, match=rf"{path}: not an annotation file"):
        read_annotations(path, make_tracks())
    missing = tmp_path / "labeled-data" / "v" / "CollectedData_x.h5"
    with pytest.raises(CalibrationError, match=rf"{missing}: annotation file not found"):
        read_annotations(missing, make_tracks())


# ------------------------------------------------------------------------------ workflow
@pytest.mark.workflow
def test_dry_run_with_calibration_lists_it_once_and_fits_depend_on_it(tmp_path):
    """A fresh dry run of the test config with the demo's sessions labelled: one
    noise_calibration job, and every job that hands error_estimator to keypoint-moseq
    (probes, final fits, apply, extract) takes its table as input."""
    from conftest import snakemake, write_demo_config
    from kpms_flow.dryrun import job_counts

    labels = tmp_path / "dlc" / "labeled-data" / "demo_01"
    write_collected_data(labels, synthetic_annotations(make_tracks(), n=30).assign(key="demo_01"), "demo_01")
    config = write_demo_config(tmp_path, calibration={"annotations": ["dlc"]})
    proc = snakemake(tmp_path, "-n", config=config)
    jobs = job_counts(proc.stdout + proc.stderr)
    assert jobs["noise_calibration"] == 1
    text = proc.stdout + proc.stderr
    blocks = text.split("\nrule ")
    dependent = {"probe_kappa", "fit_arhmm", "fit_full_model", "apply_model", "extract_results"}
    seen = set()
    for block in blocks:
        name = block.split(":", 1)[0].strip()
        if name in dependent:
            inputs = next(line for line in block.splitlines() if line.strip().startswith("input:"))
            assert "results/calibration/error_estimator.tsv" in inputs, (name, inputs)
            seen.add(name)
        if name == "noise_calibration":
            inputs = next(line for line in block.splitlines() if line.strip().startswith("input:"))
            # Only the labelled session's keypoints (and the label file): nothing else upstream.
            assert "results/keypoints/demo_01.h5" in inputs and "demo_02" not in inputs
    # Probes and fits resolve after the search checkpoints; these are in the first DAG.
    assert {"probe_kappa", "apply_model", "extract_results"} <= seen
    settings = yaml.safe_load(config.read_text())
    assert settings["calibration"] == {"annotations": ["dlc"]}  # the user's config is untouched


# ---------------------------------------------------------------------- labelling page
def test_page_samples_as_keypoint_moseq_seeded(tmp_path):
    """keypoint-moseq's sample_error_frames, seeded: the same frames for the same seed,
    enriched for low confidence, and NumPy's global state left as it was."""
    from kpms_flow.calibration_page import read_frames, sample_items

    tracks = make_tracks()
    rng = np.random.default_rng(3)
    for track in tracks.values():  # as trackers give them: most near 1, a tail down to 0.01
        track.confidences = 10 ** (-2 * rng.beta(1, 8, size=track.confidences.shape))
    confidences = {k: t.confidences for k, t in tracks.items()}
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    first = sample_items(confidences, BODYPARTS, BODYPARTS, seed=7, num_samples=50)
    assert np.random.random() == before
    assert sample_items(confidences, BODYPARTS, BODYPARTS, seed=7, num_samples=50) == first
    assert sample_items(confidences, BODYPARTS, BODYPARTS, seed=8, num_samples=50) != first
    # 5 per log-spaced confidence bin, fewer where a bin has fewer points (keypoint-moseq's rule).
    assert 20 <= len(first) <= 50 and {k for k, _, _ in first} <= set(tracks)
    sampled = np.array([tracks[k].confidences[t, BODYPARTS.index(b)] for k, t, b in first])
    everything = np.concatenate([t.confidences.ravel() for t in tracks.values()])
    assert np.median(sampled) < np.median(everything)  # low confidence enriched
    with pytest.raises(CalibrationError, match=rf"session '{first[0][0]}': no video to cut labelling frames from"):
        read_frames(first, {})


def _cdp(ws, method, _counter=[0], **params):
    """One DevTools protocol call on a websocket; events before the answer are skipped."""
    import json

    _counter[0] += 1
    ws.send(json.dumps({"id": _counter[0], "method": method, "params": params}))
    while True:
        message = json.loads(ws.recv(timeout=30))
        if message.get("id") == _counter[0]:
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            return message.get("result", {})


def _evaluate(ws, expression):
    result = _cdp(ws, "Runtime.evaluate", expression=expression, returnByValue=True)
    return result["result"].get("value")


def _click(ws, x, y):
    for kind in ("mousePressed", "mouseReleased"):
        _cdp(ws, "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def test_labelling_page_round_trip_in_headless_chromium(tmp_path):
    """The page in a real headless Chromium from file://: clicks on the frames (with a
    correction after going back) and its Save button give keypoint-moseq's CSV with those
    positions, which calibration reads."""
    import json
    import re
    import subprocess
    import time
    import urllib.request

    from screenshot_report import CHROMIUM_FLAGS, ensure_chromium
    from websockets.sync.client import connect

    from kpms_flow.calibration import read_kpms_annotations
    from kpms_flow.calibration_page import write_page

    chromium = ensure_chromium()  # installed from Debian's packages when root (CI)
    if chromium is None:
        pytest.skip("no Chromium and not root to install it (Debian: apt-get install chromium)")
    items = [("s1", 12, "nose"), ("s2", 40, "neck"), ("s1", 77, "tailbase")]
    rng = np.random.default_rng(0)
    frames = {item: rng.integers(0, 255, size=(150, 200, 3), dtype=np.uint8) for item in items}
    tracked = {items[0]: (55.0, 42.0), items[1]: (np.nan, np.nan), items[2]: (12.0, 130.0)}
    page = tmp_path / "labelling.html"
    write_page(page, items, frames, tracked, title="test page")
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--remote-debugging-port=0", "--window-size=1000,800", page.as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = None
        for line in proc.stderr:  # "DevTools listening on ws://127.0.0.1:<port>/devtools/browser/<id>"
            match = re.search(r"ws://127\.0\.0\.1:(\d+)(/devtools/browser/\S+)", line)
            if match:
                port, browser_path = match.group(1), match.group(2)
                break
        assert port, "Chromium did not open its DevTools port"
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list").read())
        target = next(t for t in targets if t["url"].startswith("file://"))
        with connect(f"ws://127.0.0.1:{port}{browser_path}", max_size=None) as browser, connect(
            target["webSocketDebuggerUrl"], max_size=None
        ) as ws:
            _cdp(browser, "Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
            deadline = time.time() + 30
            while _evaluate(ws, "document.getElementById('view').width") != 200:
                assert time.time() < deadline, "the page did not draw its first frame"
                time.sleep(0.2)

            def box(element_id):
                return _evaluate(ws, f"JSON.stringify(document.getElementById('{element_id}').getBoundingClientRect())")

            def click_image(x, y):
                rect = json.loads(box("view"))
                scale = rect["width"] / 200  # border included: under 1 % here
                _click(ws, rect["left"] + 1 + x * scale, rect["top"] + 1 + y * scale)

            def press(button_id):
                rect = json.loads(box(button_id))
                _click(ws, rect["left"] + rect["width"] / 2, rect["top"] + rect["height"] / 2)

            click_image(50, 40)
            press("next")
            click_image(120, 80)
            press("prev")  # back to the first frame: correct its label
            click_image(60, 45)
            press("next")
            press("next")
            click_image(10, 140)
            assert "labelled: 3 (17 more needed)" in _evaluate(ws, "document.getElementById('info').textContent")
            press("save")
            saved = downloads / "error_annotations.csv"
            deadline = time.time() + 30
            while not saved.exists():
                assert time.time() < deadline, f"no download in {downloads}: {list(downloads.iterdir())}"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    table = read_kpms_annotations(saved)
    assert table[["key", "coordinate_index", "video_frame_index", "bodypart"]].values.tolist() == [
        ["s1", 12, 12, "nose"], ["s2", 40, 40, "neck"], ["s1", 77, 77, "tailbase"],
    ]
    expected = np.array([[60, 45], [120, 80], [10, 140]], dtype=float)
    np.testing.assert_allclose(table[["x", "y"]].to_numpy(), expected, atol=1.0)
