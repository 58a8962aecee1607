"""Tests for kpms_flow.formats: keypoint-moseq's loaders on real files, plus our checks."""

from __future__ import annotations

import csv
import datetime
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from kpms_flow.formats import (
    FORMAT_EXTENSIONS,
    KPMS_FORMATS,
    _dlc_arrays_from_frame,
    _dlc_header,
    list_animals,
    load_session,
    sniff_format,
    validate_session,
)
from kpms_flow.keypoints import InputError, SessionKeypoints, sha256_of_file

POSE_DIR = (Path(__file__).parents[1] / ".." / "shared" / "data" / "pose").resolve()

DLC_H5 = "dlc_openfield_mouse/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5"
DLC_NWB = "dlc_openfield_mouse/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.nwb"
DLC_CSV = "dlc_openfield_mouse/openfield_dlc_inference_example.csv"
DLC_CSV_MISSING = "dlc_openfield_mouse/openfield_dlc_inference_example_missingdata.csv"
MADLC_CSV = (
    "ethome_social_mice/"
    "e3v813a-20210610T122332-122642DLC_dlcrnetms5_pilot_studySep24shuffle1_100000_el_filtered.csv"
)
TWO_KEYS_H5 = "deepof_topview/testDLC_h5_table_madlc.901frames_2keys.h5"
MABE_H5 = "mabe_no_likelihood/EGS8X2MN4SSUGFWAV976.h5"
OLD_SLEAP_H5 = "sleap_flies/analysis_example_predictions.analysis.h5"
OPENFIELD_BODYPARTS = ["snout", "leftear", "rightear", "tailbase"]


def pose_file(relative: str) -> Path:
    """Path of a file in the shared real-data folder; skip the test when it is absent."""
    if not POSE_DIR.is_dir():
        pytest.skip("../shared/data/pose not found: real-data tests need the shared folder beside the project")
    path = POSE_DIR / relative
    if not path.exists():
        pytest.skip(f"{relative} not found in ../shared/data/pose")
    return path


def dlc_frame(bodyparts, n=5, individuals=None, coords=("x", "y", "likelihood"), seed=0):
    """A small DeepLabCut-layout DataFrame."""
    rng = np.random.default_rng(seed)
    if individuals:
        cols = pd.MultiIndex.from_product(
            [["DLC_scorer"], individuals, bodyparts, list(coords)],
            names=["scorer", "individuals", "bodyparts", "coords"],
        )
    else:
        cols = pd.MultiIndex.from_product(
            [["DLC_scorer"], bodyparts, list(coords)], names=["scorer", "bodyparts", "coords"]
        )
    return pd.DataFrame(rng.uniform(0, 1, (n, len(cols))), columns=cols)


def header_bodyparts(path: Path, individual: str | None = None) -> list[str]:
    """Bodyparts in file order, read from the CSV header text (independently of pandas)."""
    with open(path) as handle:
        rows = [next(csv.reader(handle)) for _ in range(4)]
    labels = {row[0]: row[1:] for row in rows}
    names = []
    for i, bp in enumerate(labels["bodyparts"]):
        if individual is None or labels["individuals"][i] == individual:
            if bp not in names:
                names.append(bp)
    return names


# --------------------------------------------------------------------------- format names


def test_format_names_match_keypoint_moseq():
    assert KPMS_FORMATS == (
        "deeplabcut", "sleap", "anipose", "sleap-anipose", "nwb", "facemap", "freipose", "dannce",
    )
    assert FORMAT_EXTENSIONS["sleap"] == (".h5", ".hdf5", ".slp")
    assert FORMAT_EXTENSIONS["dannce"] == (".mat",)


# --------------------------------------------------------------------------- real files load


def test_dlc_h5_loads_with_header_order_and_provenance():
    path = pose_file(DLC_H5)
    before = sha256_of_file(path)
    kp = load_session(str(path), "deeplabcut", "m3v1")
    assert kp.coordinates.shape == (2330, 4, 2)
    assert kp.confidences.shape == (2330, 4)
    assert kp.bodyparts == OPENFIELD_BODYPARTS
    assert kp.coordinates.dtype == np.float64
    assert not np.isnan(kp.coordinates).any()
    assert kp.source_path == str(path)
    assert kp.source_sha256 == before == sha256_of_file(path)  # read-only: file unchanged
    assert (kp.format, kp.animal, kp.session) == ("deeplabcut", "", "m3v1")
    assert kp.fps is None and kp.fps_source == ""
    # values are the file's: snout x/likelihood of frame 0 as pandas reads them
    df = pd.read_hdf(path)
    scorer = df.columns.get_level_values("scorer")[0]
    assert kp.coordinates[0, 0, 0] == df[(scorer, "snout", "x")].iloc[0]
    assert kp.confidences[5, 3] == df[(scorer, "tailbase", "likelihood")].iloc[5]


def test_fps_from_table_argument():
    path = pose_file(DLC_H5)
    kp = load_session(path, "deeplabcut", "m3v1", fps=30)
    assert (kp.fps, kp.fps_source) == (30.0, "table")
    kp = load_session(path, "deeplabcut", "m3v1", fps=float("nan"))  # NaN = not given
    assert (kp.fps, kp.fps_source) == (None, "")
    with pytest.raises(InputError, match="positive"):
        load_session(path, "deeplabcut", "m3v1", fps=-5)


def test_dlc_csv_and_missing_data_csv():
    full = load_session(pose_file(DLC_CSV), "deeplabcut", "full")
    missing = load_session(pose_file(DLC_CSV_MISSING), "deeplabcut", "missing")
    for kp in (full, missing):
        assert kp.coordinates.shape == (2330, 4, 2)
        assert kp.bodyparts == OPENFIELD_BODYPARTS
    assert np.isnan(full.coordinates).mean() == 0.0
    # The "_missingdata" file blanks x, y and likelihood of the snout in frames 0 and 1 only.
    nan_keypoints = np.argwhere(np.isnan(missing.coordinates).any(axis=2))
    assert nan_keypoints.tolist() == [[0, 0], [1, 0]]
    assert np.isnan(missing.coordinates[..., 0]).mean() == pytest.approx(2 / (2330 * 4))
    assert (missing.confidences[[0, 1], 0] == 0).all()  # missing -> confidence 0
    same = ~np.isnan(missing.coordinates)
    np.testing.assert_array_equal(missing.coordinates[same], full.coordinates[same])


def test_multi_animal_dlc_csv_uses_header_order():
    path = pose_file(MADLC_CSV)
    assert list_animals(path, "deeplabcut") == ["adult", "juvenile"]
    expected = ["nose", "leftear", "rightear", "neck", "lefthip", "righthip", "tail"]
    assert header_bodyparts(path, "adult") == expected
    for animal in ("adult", "juvenile"):
        kp = load_session(path, "deeplabcut", f"social.{animal}", animal=animal)
        assert kp.coordinates.shape == (5700, 7, 2)
        assert kp.bodyparts == expected == header_bodyparts(path, animal)
        assert kp.animal == animal
        assert np.isnan(kp.coordinates).mean() == 0.0
    # First data row of the file: juvenile nose at (279.401, 250.082), likelihood 1.0.
    np.testing.assert_allclose(kp.coordinates[0, 0], [279.401, 250.082])
    assert kp.confidences[0, 0] == 1.0


def test_multi_animal_dlc_pitfall_is_real_and_arrays_match_kpms():
    """keypoint-moseq returns a set for multi-animal bodyparts; its arrays follow the header."""
    import keypoint_moseq.io as kio

    path = pose_file(MADLC_CSV)
    coords, confs, bodyparts = kio._deeplabcut_loader(str(path), "s")
    assert isinstance(bodyparts, set)
    kp = load_session(path, "deeplabcut", "x", animal="adult")
    np.testing.assert_array_equal(kp.coordinates, coords["s_adult"])
    # our own column extraction (used where keypoint-moseq cannot read the file) agrees too
    layout = _dlc_header(path, path)
    df = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0)
    own_xy, own_conf = _dlc_arrays_from_frame(df, layout, "juvenile", path)
    np.testing.assert_array_equal(own_xy, coords["s_juvenile"])
    np.testing.assert_array_equal(own_conf, confs["s_juvenile"])


def test_animal_selection_errors():
    path = pose_file(MADLC_CSV)
    with pytest.raises(InputError, match=r"holds 2 animals \('adult', 'juvenile'\)"):
        load_session(path, "deeplabcut", "x")
    with pytest.raises(InputError, match="has no animal 'pup'"):
        load_session(path, "deeplabcut", "x", animal="pup")
    with pytest.raises(InputError, match="single animal"):
        load_session(pose_file(DLC_CSV), "deeplabcut", "x", animal="adult")


def test_sleap_slp_single_track():
    path = pose_file("deepof_topview/testDLC_sleap.slp")
    assert list_animals(path, "sleap") == [""]
    kp = load_session(path, "sleap", "deepof")
    assert kp.coordinates.shape == (101, 14, 2)
    assert kp.bodyparts == [
        "Nose", "Left_ear", "Right_ear", "Spine_1", "Center", "Spine_2", "Tail_base",
        "Tail_1", "Tail_2", "Tail_tip", "Left_fhip", "Right_fhip", "Left_bhip", "Right_bhip",
    ]
    assert np.isnan(kp.coordinates).mean() == 0.0
    assert kp.fps is None  # the .slp records no video fps


@pytest.mark.parametrize(
    "name, n_frames, n_tracks, track_names, nan_fraction",
    [
        ("analysis_example_predictions.slp", 3000, 2, ["track_0", "track_1"], 0.016718),
        ("clip_proofread_13node.slp", 1500, 2, ["female", "male"], 0.024718),
    ],
)
def test_sleap_slp_flies(name, n_frames, n_tracks, track_names, nan_fraction):
    import sleap_io

    path = pose_file(f"sleap_flies/{name}")
    animals = list_animals(path, "sleap")
    assert animals == [f"track{i}" for i in range(n_tracks)]
    kp = load_session(path, "sleap", "fly", animal="track0")
    assert kp.coordinates.shape == (n_frames, 13, 2)
    assert kp.bodyparts[:5] == ["head", "thorax", "abdomen", "wingL", "wingR"]
    assert kp.extra_attrs["track_name"] == track_names[0]
    assert load_session(path, "sleap", "fly", animal="track1").extra_attrs["track_name"] == track_names[1]
    # NaN fraction as sleap-io itself reads track 0
    arr = sleap_io.load_slp(str(path)).numpy()
    measured = np.isnan(arr[:, 0, :, 0]).mean()
    assert np.isnan(kp.coordinates[..., 0]).mean() == pytest.approx(measured)
    assert measured == pytest.approx(nan_fraction, abs=1e-6)


def test_sleap_slp_many_fragments():
    path = pose_file("sleap_flies/centered_pair_predictions.slp")
    animals = list_animals(path, "sleap")
    assert len(animals) == 27  # 27 track fragments, most nearly empty
    kp = load_session(path, "sleap", "pair", animal="track2")
    assert kp.coordinates.shape == (1100, 24, 2)
    assert np.isnan(kp.coordinates[..., 0]).mean() > 0.99  # a fragment, not an animal
    validate_session(kp)  # not *all* NaN: validation alone does not drop it


def test_nwb_loads_same_values_as_source_h5():
    nwb = load_session(pose_file(DLC_NWB), "nwb", "m3v1")
    h5 = load_session(pose_file(DLC_H5), "deeplabcut", "m3v1")
    assert nwb.coordinates.shape == (2330, 4, 2)
    assert nwb.bodyparts == [f"ind1_{b}" for b in OPENFIELD_BODYPARTS]
    np.testing.assert_allclose(nwb.coordinates, h5.coordinates)
    np.testing.assert_allclose(nwb.confidences, h5.confidences)
    # DLC2NWB wrote frame indices as timestamps (no video found): not a frame rate.
    assert (nwb.fps, nwb.fps_source) == (None, "")
    kp = load_session(pose_file(DLC_NWB), "nwb", "m3v1", fps=30)
    assert (kp.fps, kp.fps_source) == (30.0, "table")


def write_nwb(path: Path, n=40, rate=25.0, timestamps=None):
    from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton, Skeletons
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(
        session_description="test", identifier="test",
        session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    )
    skeleton = Skeleton(name="mouse", nodes=["nose", "tail"])
    timing = {"rate": rate} if timestamps is None else {"timestamps": timestamps}
    series = [
        PoseEstimationSeries(
            name=b, description=b, data=np.full((n, 2), float(i)), unit="px",
            reference_frame="top left", confidence=np.ones(n), **timing,
        )
        for i, b in enumerate(["nose", "tail"])
    ]
    module = nwb.create_processing_module(name="behavior", description="pose")
    module.add(Skeletons(skeletons=[skeleton]))
    module.add(PoseEstimation(
        name="PoseEstimation", pose_estimation_series=series, description="d",
        skeleton=skeleton, source_software="test",
    ))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)


def test_nwb_fps_from_file_rate_and_timestamps(tmp_path):
    write_nwb(tmp_path / "rate.nwb", rate=25.0)
    kp = load_session(tmp_path / "rate.nwb", "nwb", "r")
    assert kp.coordinates.shape == (40, 2, 2)
    assert kp.bodyparts == ["nose", "tail"]
    assert (kp.fps, kp.fps_source) == (25.0, "file")
    write_nwb(tmp_path / "ts.nwb", timestamps=np.arange(40) / 50.0)
    kp = load_session(tmp_path / "ts.nwb", "nwb", "t", fps=50.2)  # within 1 %: file wins
    assert kp.fps == pytest.approx(50.0) and kp.fps_source == "file"
    with pytest.raises(InputError, match="says 25 fps but the sessions table says 30"):
        load_session(tmp_path / "rate.nwb", "nwb", "r", fps=30)


def test_dannce_mat_has_numbered_bodyparts():
    kp = load_session(pose_file("dannce_3d/save_data_AVG_torch_nearest.mat"), "dannce", "rat")
    assert kp.coordinates.shape == (1000, 22, 3)
    assert kp.bodyparts == [f"bodypart{i}" for i in range(22)]
    assert kp.n_dims == 3


def test_lightning_pose_csv_reads_as_deeplabcut():
    kp = load_session(pose_file("lightning_pose/ibl-paw.right.rng=0.csv"), "deeplabcut", "paw")
    assert kp.coordinates.shape == (2500, 2, 2)
    assert kp.bodyparts == ["paw_l", "paw_r"]


# --------------------------------------------------------------------------- real files refused


def test_mabe_without_likelihood_is_refused():
    import keypoint_moseq.io as kio

    path = pose_file(MABE_H5)
    # the pitfall: keypoint-moseq silently returns 8 keypoints for 12 bodyparts
    coords, _, _ = kio._deeplabcut_loader(str(path), "s")
    assert coords["s_mouse1"].shape == (1800, 8, 2)
    for call in (lambda: load_session(path, "deeplabcut", "m", animal="mouse1"),
                 lambda: list_animals(path, "deeplabcut")):
        with pytest.raises(InputError) as err:
            call()
        assert str(path) in str(err.value)
        assert "no 'likelihood' coordinate (coords found: x, y)" in str(err.value)


def test_h5_with_two_dlc_keys_is_refused():
    path = pose_file(TWO_KEYS_H5)
    with pytest.raises(InputError) as err:
        load_session(path, "deeplabcut", "x", animal="mouse_black_tail")
    message = str(err.value)
    assert str(path) in message
    assert "2 pandas keys (/test, /tracks)" in message and "2 of them are DeepLabCut tables" in message


def test_old_sleap_analysis_h5_without_point_scores_is_refused():
    path = pose_file(OLD_SLEAP_H5)
    assert sniff_format(path) == "sleap"
    with pytest.raises(InputError, match="no 'point_scores' dataset") as err:
        load_session(path, "sleap", "x", animal="track0")
    assert str(path) in str(err.value)


def test_missing_file_unknown_format_bad_extension(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(InputError, match=f"{missing}: file not found"):
        load_session(missing, "deeplabcut", "x")
    with pytest.raises(InputError, match="not a regular file"):
        list_animals(tmp_path, "deeplabcut")
    path = pose_file(DLC_H5)
    with pytest.raises(InputError) as err:
        load_session(path, "DeepLabCut", "x")
    assert "unknown format 'DeepLabCut'" in str(err.value)
    assert "did you mean 'deeplabcut'" in str(err.value)
    assert ", ".join(KPMS_FORMATS) in str(err.value)
    with pytest.raises(InputError, match="extension '.h5' is not read by keypoint-moseq's nwb loader"):
        load_session(path, "nwb", "x")


def test_sleap_h5_that_is_not_sleap(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["tracks"] = np.zeros((10, 1, 3, 3))  # sleap-anipose layout
        f["node_names"] = np.array([b"a", b"b", b"c"])
    with pytest.raises(InputError, match="sleap-anipose"):
        load_session(path, "sleap", "x")


def test_sleap_analysis_h5_with_point_scores_loads(tmp_path):
    path = tmp_path / "new.analysis.h5"
    tracks = np.arange(2 * 2 * 3 * 7, dtype=float).reshape(2, 2, 3, 7)  # tracks, xy, nodes, frames
    with h5py.File(path, "w") as f:
        f["tracks"] = tracks
        f["point_scores"] = np.ones((2, 3, 7))
        f["node_names"] = np.array([b"head", b"body", b"tail"])
        f["track_names"] = np.array([b"red", b"blue"])
    assert list_animals(path, "sleap") == ["track0", "track1"]
    kp = load_session(path, "sleap", "x", animal="track1")
    assert kp.coordinates.shape == (7, 3, 2)
    np.testing.assert_array_equal(kp.coordinates[:, :, 0], tracks[1, 0].T)
    assert kp.extra_attrs["track_name"] == "blue"


# --------------------------------------------------------------------------- synthetic DLC tables


def test_dlc_h5_with_one_table_key_and_other_keys_is_read(tmp_path):
    path = tmp_path / "two.h5"
    df = dlc_frame(["nose", "tail"], n=6)
    df.to_hdf(path, key="df_with_missing")
    pd.DataFrame({"note": [1.0, 2.0]}).to_hdf(path, key="metadata")
    kp = load_session(path, "deeplabcut", "two")
    assert kp.coordinates.shape == (6, 2, 2)
    assert kp.extra_attrs["h5_key"] == "/df_with_missing"
    np.testing.assert_array_equal(kp.coordinates[:, 1, 0], df[("DLC_scorer", "tail", "x")].to_numpy())


def test_dlc_hdf5_extension_is_read(tmp_path):
    path = tmp_path / "table.hdf5"  # keypoint-moseq's loader only reads '.h5'
    df = dlc_frame(["a", "b", "c"], n=4)
    df.to_hdf(path, key="df")
    kp = load_session(path, "deeplabcut", "t")
    assert kp.bodyparts == ["a", "b", "c"]
    np.testing.assert_array_equal(kp.confidences[:, 2], df[("DLC_scorer", "c", "likelihood")])


def test_dlc_single_individual_is_excluded(tmp_path):
    df = pd.concat(
        [dlc_frame(["nose", "tail"], individuals=["m1", "m2"]), dlc_frame(["port"], individuals=["single"])],
        axis=1,
    )
    path = tmp_path / "ma.csv"
    df.to_csv(path)
    assert list_animals(path, "deeplabcut") == ["m1", "m2"]
    kp = load_session(path, "deeplabcut", "ma.m2", animal="m2")
    assert kp.bodyparts == ["nose", "tail"]


def test_dlc_csv_with_extra_index_column_is_refused(tmp_path):
    path = tmp_path / "extra.csv"
    dlc_frame(["nose", "tail"]).reset_index().to_csv(path)
    with pytest.raises(InputError, match="extra index column") as err:
        load_session(path, "deeplabcut", "x")
    assert str(path) in str(err.value)


def test_dlc_csv_without_index_column_is_refused(tmp_path):
    path = tmp_path / "noindex.csv"
    dlc_frame(["nose", "tail"]).to_csv(path, index=False)
    with pytest.raises(InputError, match="saved without its frame-index column"):
        load_session(path, "deeplabcut", "x")


def test_dlc_coords_out_of_order_are_refused(tmp_path):
    path = tmp_path / "order.csv"
    dlc_frame(["nose", "tail"], coords=("likelihood", "x", "y")).to_csv(path)
    with pytest.raises(InputError, match="not x, y, likelihood in that order"):
        load_session(path, "deeplabcut", "x")


def test_dlc_3d_is_refused(tmp_path):
    path = tmp_path / "3d.csv"
    dlc_frame(["nose"], coords=("x", "y", "z", "likelihood")).to_csv(path)
    with pytest.raises(InputError, match="'z' coordinates"):
        load_session(path, "deeplabcut", "x")


def test_dlc_without_frames_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    dlc_frame(["nose", "tail"]).iloc[:0].to_csv(path)
    with pytest.raises(InputError, match="no frames"):
        load_session(path, "deeplabcut", "x")


def test_dlc_non_numeric_values_are_refused(tmp_path):
    path = tmp_path / "text.csv"
    df = dlc_frame(["nose", "tail"]).astype(object)
    df.iloc[2, 1] = "oops"
    df.to_csv(path)
    with pytest.raises(InputError, match="not all numeric"):
        load_session(path, "deeplabcut", "x")


def test_anipose_loads_and_unsafe_names_are_refused(tmp_path):
    n = 5
    good = tmp_path / "good.csv"
    cols = {}
    for bp in ("nose", "tail"):
        for c in ("x", "y", "z"):
            cols[f"{bp}_{c}"] = np.arange(n, dtype=float)
        cols[f"{bp}_error"] = np.zeros(n)
        cols[f"{bp}_score"] = np.ones(n)
    cols["fnum"] = np.arange(n)
    pd.DataFrame(cols).to_csv(good, index=False)
    assert sniff_format(good) == "anipose"
    kp = load_session(good, "anipose", "a")
    assert kp.coordinates.shape == (5, 2, 3) and kp.bodyparts == ["nose", "tail"]
    bad = tmp_path / "bad.csv"
    pd.DataFrame({k.replace("tail", "tail-base"): v for k, v in cols.items()}).to_csv(bad, index=False)
    with pytest.raises(InputError, match=r"\['tail-base'\].*silently drop"):
        load_session(bad, "anipose", "a")


# --------------------------------------------------------------------------- validate_session


def make_kp(frames=10, bodyparts=("nose", "tail"), fill=1.0):
    coords = np.full((frames, len(bodyparts), 2), fill)
    return SessionKeypoints(
        session="s1", coordinates=coords, confidences=np.ones(coords.shape[:2]),
        bodyparts=list(bodyparts), source_path="/data/s1.h5", source_sha256="0" * 64, format="deeplabcut",
    )


def test_validate_session_accepts_and_refuses():
    kp = make_kp()
    assert validate_session(kp, required_bodyparts=["nose"], min_frames=10) is kp
    with pytest.raises(InputError, match=r"/data/s1.h5.*missing required bodyparts spine; available: nose, tail"):
        validate_session(kp, required_bodyparts=["nose", "spine"])
    with pytest.raises(InputError, match="10 frames, fewer than the minimum 100"):
        validate_session(kp, min_frames=100)
    with pytest.raises(InputError, match="all coordinates are missing"):
        validate_session(make_kp(fill=np.nan))
    bad = make_kp()
    bad.bodyparts = ["nose"]
    with pytest.raises(InputError, match="1 bodypart names but the array has 2 keypoints"):
        validate_session(bad)
    text = make_kp()
    text.coordinates = text.coordinates.astype(object)
    with pytest.raises(InputError, match="not numeric"):
        validate_session(text)


def test_validate_real_session_required_bodyparts():
    kp = load_session(pose_file(DLC_H5), "deeplabcut", "m3v1")
    validate_session(kp, required_bodyparts=["snout", "tailbase"], min_frames=2330)
    with pytest.raises(InputError, match="missing required bodyparts nose"):
        validate_session(kp, required_bodyparts=["nose"])
