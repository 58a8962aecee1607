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
    FORMATS,
    KPMS_FORMATS,
    list_animals,
    load_session,
    sniff_format,
    validate_session,
    video_info,
)
from kpms_flow.formats.deeplabcut import arrays_from_frame, read_header
from kpms_flow.keypoints import InputError, SessionKeypoints, sha256_of_file
from kpms_flow.sessions import discover_sessions, infer_format
from conftest import write_video, shared_pose as pose_file

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
    import inspect

    import keypoint_moseq.io as kio

    assert KPMS_FORMATS == (
        "deeplabcut", "sleap", "anipose", "sleap-anipose", "nwb", "facemap", "freipose", "dannce",
    )
    source = inspect.getsource(kio.load_keypoints)
    for name in KPMS_FORMATS:  # each is a format keypoint-moseq's load_keypoints dispatches on
        assert f'"{name}"' in source
        assert callable(getattr(kio, "_" + name.replace("-", "_") + "_loader"))
    assert FORMATS == KPMS_FORMATS + ("annolid",)
    assert FORMAT_EXTENSIONS["sleap"] == (".h5", ".hdf5", ".slp")
    assert FORMAT_EXTENSIONS["dannce"] == (".mat",)
    assert FORMAT_EXTENSIONS["annolid"] == (".ndjson",)


def test_the_registry_is_the_only_list_of_formats():
    """Sessions table, CLI and schema take the formats from the registry's records."""
    import yaml

    from kpms_flow import sessions
    from kpms_flow.formats import DISCOVER_EXTENSIONS, REGISTRY, get_format

    assert tuple(fmt.name for fmt in REGISTRY) == FORMATS
    assert {fmt.name: fmt.extensions for fmt in REGISTRY} == FORMAT_EXTENSIONS
    schema_path = Path(__file__).parents[1] / "workflow" / "schemas" / "sessions.schema.yaml"
    enum = yaml.safe_load(schema_path.read_text())["properties"]["format"]["enum"]
    assert enum == list(FORMATS), "sessions.schema.yaml's format enum must list the registry's formats"
    # searched folders skip .json (not self-identifying) and .ndjson (Annolid: found as folders)
    assert set(DISCOVER_EXTENSIONS) == {".csv", ".h5", ".hdf5", ".slp", ".nwb", ".mat"}
    assert sessions.DISCOVER_EXTENSIONS is DISCOVER_EXTENSIONS
    assert get_format("freipose").sniff is None and get_format("annolid").reads_folders
    with pytest.raises(InputError, match=r"f\.h5: unknown format 'SLEAP' \(names are case-sensitive: did you mean 'sleap'\?\); valid formats are: deeplabcut, sleap, anipose"):
        get_format("SLEAP", "f.h5")


def test_sniffing_tries_the_formats_that_read_the_extension_in_registry_order(tmp_path):
    # A CSV both DeepLabCut-like and anipose-like: deeplabcut comes first in the registry.
    both = tmp_path / "both.csv"
    both.write_text("scorer,a_x,a_score\nbodyparts,1,1\n")
    assert sniff_format(both) == "deeplabcut"
    anipose = tmp_path / "pose3d.csv"
    anipose.write_text("nose_x,nose_y,nose_z,nose_score,fnum\n1,2,3,0.9,0\n")
    assert sniff_format(anipose) == "anipose"
    with h5py.File(tmp_path / "points3d.h5", "w") as f:
        f["tracks"] = np.zeros((5, 1, 4, 3))
    assert sniff_format(tmp_path / "points3d.h5") == "sleap-anipose"
    with h5py.File(tmp_path / "analysis.h5", "w") as f:  # SLEAP's layout with 3 frames: still sleap
        f["tracks"] = np.zeros((1, 2, 4, 3))
        f["node_names"] = [b"a", b"b", b"c", b"d"]
    assert sniff_format(tmp_path / "analysis.h5") == "sleap"
    with h5py.File(tmp_path / "facemap.h5", "w") as f:
        f.create_group("Facemap")
    assert sniff_format(tmp_path / "facemap.h5") == "facemap"
    (tmp_path / "not.h5").write_text("not hdf5")
    (tmp_path / "pred.json").write_text("[]")
    assert sniff_format(tmp_path / "not.h5") is None and sniff_format(tmp_path / "pred.json") is None
    assert sniff_format(tmp_path) is None  # a folder without Annolid annotations


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
    layout = read_header(path, path)
    df = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0)
    own_xy, own_conf = arrays_from_frame(df, layout, "juvenile", path)
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
    # A fragment: 20 of its 24 bodyparts are never tracked, which validation refuses.
    with pytest.raises(InputError, match=r"centered_pair_predictions.slp.*bodyparts head, neck, .* are missing \(NaN\) in every frame"):
        validate_session(kp)
    tracked = [b for i, b in enumerate(kp.bodyparts) if not np.isnan(kp.coordinates[:, i]).all()]
    assert len(tracked) == 4
    validate_session(kp, used_bodyparts=tracked)  # not all NaN once those are left out


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


def nwb_without_nodes(tmp_path: Path) -> Path:
    """The shared DLC2NWB file (ndx-pose 0.1.0) without its optional PoseEstimation 'nodes'."""
    import shutil

    path = tmp_path / "no_nodes.nwb"
    shutil.copy(pose_file(DLC_NWB), path)
    with h5py.File(path, "r+") as f:
        assert list(f["specifications/ndx-pose"]) == ["0.1.0"]
        del f["processing/behavior/PoseEstimation/nodes"]  # optional in ndx-pose 0.1's schema
    return path


NO_SKELETON = (
    "keypoint-moseq's nwb loader failed: ValueError: This PoseEstimation object has no Skeleton, "
    "so it has no nodes. Provide a 'skeleton' argument to access nodes via PoseEstimation.skeleton.nodes."
)


def test_nwb_from_an_older_ndx_pose_without_nodes_is_explained(tmp_path):
    path = nwb_without_nodes(tmp_path)
    for call in (lambda: load_session(path, "nwb", "x"), lambda: list_animals(path, "nwb")):
        with pytest.raises(InputError) as err:
            call()
        first, second = str(err.value).split("\n")
        assert first.startswith(f"{path}: this NWB file's pose estimation has no skeleton, so it names no bodyparts")
        assert "written with ndx-pose 0.1.0" in first
        assert "Re-export the NWB with ndx-pose >= 0.2" in first and "format deeplabcut" in first
        assert second == "  " + NO_SKELETON  # the library's own text, one line below
    with pytest.raises(InputError, match=rf"no pose sessions found in {tmp_path}\n  {path}: this NWB file's pose"):
        discover_sessions([str(tmp_path)])  # the sessions CLI gives the reason too


def test_nwb_without_a_skeleton_from_the_pinned_ndx_pose_is_explained(tmp_path):
    from ndx_pose import PoseEstimation, PoseEstimationSeries
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="t", identifier="t",
                  session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    series = [PoseEstimationSeries(name=b, description=b, data=np.zeros((5, 2)), unit="px",
                                   reference_frame="top left", confidence=np.ones(5), rate=30.0)
              for b in ("nose", "tail")]
    module = nwb.create_processing_module(name="behavior", description="pose")
    module.add(PoseEstimation(name="PoseEstimation", pose_estimation_series=series, description="d"))
    path = tmp_path / "no_skeleton.nwb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    with pytest.raises(InputError) as err:
        load_session(path, "nwb", "x")
    first, second = str(err.value).split("\n")
    assert "its PoseEstimation links no Skeleton (written with ndx-pose 0.4.0)" in first
    assert second == "  " + NO_SKELETON


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


@pytest.mark.parametrize("shared", [DLC_CSV, MADLC_CSV])
def test_dlc_csv_resaved_by_pandas_loads_as_keypoint_moseq_loads_it(tmp_path, shared):
    """read_csv's default single header row numbers repeated scorers X, X.1, X.2, ...; saving
    again writes them into the scorer row. keypoint-moseq ignores the scorer; so do we."""
    import contextlib
    import io

    import keypoint_moseq.io as kio

    source = pose_file(shared)
    resaved = tmp_path / "resaved.csv"
    pd.read_csv(source).to_csv(resaved, index=False)
    scorer_row = resaved.read_text().splitlines()[0].split(",")
    assert scorer_row[2].endswith(".1") and scorer_row[-1].endswith(f".{len(scorer_row) - 2}")
    animal = "juvenile" if shared == MADLC_CSV else ""
    original = load_session(source, "deeplabcut", "o", animal=animal)
    kp = load_session(resaved, "deeplabcut", "r", animal=animal)
    assert kp.bodyparts == original.bodyparts
    np.testing.assert_array_equal(kp.coordinates, original.coordinates)
    np.testing.assert_array_equal(kp.confidences, original.confidences)
    assert "pandas' duplicate-name suffixes" in kp.extra_attrs["scorer"]
    with contextlib.redirect_stdout(io.StringIO()):
        coords, confs, _ = kio._deeplabcut_loader(str(resaved), "s")
    key = f"s_{animal}" if animal else "s"
    np.testing.assert_array_equal(kp.coordinates, np.where(np.isfinite(coords[key]), coords[key], np.nan))
    assert list_animals(resaved, "deeplabcut") == list_animals(source, "deeplabcut")


def test_dlc_scorers_that_really_differ_are_still_refused(tmp_path):
    df = dlc_frame(["nose", "tail"])
    df.columns = pd.MultiIndex.from_tuples(
        [("A" if bp == "nose" else "A.5", bp, c) for _, bp, c in df.columns], names=df.columns.names
    )  # ".5" is not how pandas numbers the second column named A
    path = tmp_path / "two_scorers.csv"
    df.to_csv(path)
    with pytest.raises(InputError, match=r"mixes several scorers \(A, A\.5\); keep one"):
        load_session(path, "deeplabcut", "x")


def test_dlc_csv_resaved_with_an_index_column_says_how_to_drop_it(tmp_path):
    source = pose_file(DLC_CSV)
    resaved = tmp_path / "with_index.csv"
    pd.read_csv(source).to_csv(resaved)  # pandas writes its own row numbers as column 1
    with pytest.raises(InputError) as err:
        load_session(resaved, "deeplabcut", "x")
    message = str(err.value)
    assert message.startswith(f"{resaved}: its first column looks like a pandas index column")
    assert "header levels found [None, '0', '1']" in message
    assert "pandas.read_csv(file, index_col=0).to_csv(new_file, index=False)" in message
    # the remedy the message gives works
    fixed = tmp_path / "fixed.csv"
    pd.read_csv(resaved, index_col=0).to_csv(fixed, index=False)
    np.testing.assert_array_equal(
        load_session(fixed, "deeplabcut", "f").coordinates, load_session(source, "deeplabcut", "o").coordinates
    )
    # the other way to get an index column: reset_index() before saving
    reset = tmp_path / "reset.csv"
    pd.read_csv(source, header=[0, 1, 2], index_col=0).reset_index().to_csv(reset)
    with pytest.raises(InputError) as err:
        load_session(reset, "deeplabcut", "x")
    assert "column 1 ('index', 'Unnamed: 1_level_1', 'Unnamed: 1_level_2') looks like a pandas index column" in str(err.value)
    df = pd.read_csv(reset, header=[0, 1, 2], index_col=0)
    df.drop(columns=df.columns[0]).to_csv(fixed)
    assert load_session(fixed, "deeplabcut", "f").coordinates.shape == (2330, 4, 2)


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
    with pytest.raises(InputError) as err:
        load_session(bad, "anipose", "a")
    message = str(err.value)
    assert message.startswith(f"{bad}: anipose CSV bodyparts ['tail-base'] have characters other than")
    assert "would silently drop them. Rename them in the CSV header ('tail-base' -> 'tail_base')" in message
    # the renaming the message gives makes a file that loads, with the new name
    import re

    renamed = tmp_path / "renamed.csv"
    pd.read_csv(bad).rename(columns=lambda c: re.sub(r"\W", "_", c)).to_csv(renamed, index=False)
    assert "re.sub(r'\\W', '_', c)" in message
    assert load_session(renamed, "anipose", "a").bodyparts == ["nose", "tail_base"]


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
    with pytest.raises(InputError, match=r"10 frames, fewer than the minimum 100 \(config key 'min_frames'\)"):
        validate_session(kp, min_frames=100)
    with pytest.raises(InputError, match="all coordinates are missing"):
        validate_session(make_kp(fill=np.nan))
    one_lost = make_kp()
    one_lost.coordinates[:, 1, 0] = np.nan  # a single NaN coordinate makes a keypoint missing
    with pytest.raises(InputError, match=r"/data/s1.h5.*bodyparts tail are missing \(NaN\) in every frame.*'use_bodyparts'"):
        validate_session(one_lost)
    assert validate_session(one_lost, used_bodyparts=["nose"]) is one_lost
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


# --------------------------------------------------------------------------- every shared file

OPENFIELD_NWB_BODYPARTS = [f"ind1_{b}" for b in OPENFIELD_BODYPARTS]
DEEPOF_14 = ["Nose", "Left_ear", "Right_ear"]  # first three of 14 (order differs per file)
FLY13 = ["head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4", "midlegL4",
         "midlegR4", "hindlegL4", "hindlegR4", "eyeL", "eyeR"]
ANNOLID4 = ["nose", "left_ear", "right_ear", "tail_base"]
BORIS = "ethome_social_mice/e3v813a-20210610T122332-122642_reencode.BORIS_annotations.csv"

# Every file under ../shared/data/pose: ("load", format, animals, {animal: (shape, NaN fraction
# of x)}, leading bodyparts) or ("refuse", format (None: format inference), message regex).
SHARED_FILES = {
    "annolid/inference_store_only/two_mice_demo/two_mice_demo_annotations.ndjson":
        ("load", "annolid", ["0", "1"], {"0": ((6, 4, 2), 4 / 24), "1": ((6, 4, 2), 5 / 24)}, ANNOLID4),
    "annolid/inference_store_only/two_mice_demo_tracked.csv":
        ("refuse", "annolid", r"is Annolid's derived tracked-centroid table .* use its results folder"),
    "annolid/inference_store_only/two_mice_demo_tracking.csv":
        ("refuse", "deeplabcut", r"is Annolid's derived per-instance tracking table .* use its results folder"),
    "annolid/single_animal_multipeak/one_mouse_demo_annotations.ndjson":
        ("load", "annolid", [""], {"": ((2, 4, 2), 0.0)}, ANNOLID4),
    "annolid/single_animal_multipeak/one_mouse_demo_000000000.json":
        ("refuse", None, "is one Annolid per-frame LabelMe file .* give its results folder"),
    "annolid/single_animal_multipeak/one_mouse_demo_000000001.json":
        ("refuse", "annolid", "is one Annolid per-frame LabelMe file"),
    "annolid/tracker_per_frame_json/two_mice_demo_annotations.ndjson":
        ("load", "annolid", ["0", "1"], {"0": ((3, 4, 2), 0.0), "1": ((3, 4, 2), 0.0)}, ANNOLID4),
    "annolid/tracker_per_frame_json/two_mice_demo_000000000.json":
        ("refuse", "freipose", "is one Annolid per-frame LabelMe file"),
    "annolid/tracker_per_frame_json/two_mice_demo_000000001.json":
        ("refuse", None, "is one Annolid per-frame LabelMe file"),
    "annolid/tracker_per_frame_json/two_mice_demo_000000002.json":
        ("refuse", "annolid", "is one Annolid per-frame LabelMe file"),
    "dannce_3d/save_data_AVG_torch_nearest.mat":
        ("load", "dannce", [""], {"": ((1000, 22, 3), 0.0)}, ["bodypart0", "bodypart1"]),
    "deepof_topview/testDLC_h5_table.h5":
        ("load", "deeplabcut", [""], {"": ((100, 14, 2), 0.0)}, DEEPOF_14),
    "deepof_topview/testDLC_h5_table_madlc.901frames_2keys.h5":
        ("refuse", "deeplabcut", r"2 pandas keys \(/test, /tracks\) and 2 of them are DeepLabCut tables"),
    "deepof_topview/testDLC_sleap.slp": ("load", "sleap", [""], {"": ((101, 14, 2), 0.0)}, DEEPOF_14),
    "deepof_topview/testDLC_square_arena.h5":
        ("load", "deeplabcut", [""], {"": ((451, 14, 2), 0.0)}, DEEPOF_14),
    "dlc_openfield_mouse/ethome_sample_nwb_.nwb":
        ("load", "nwb", [""], {"": ((2330, 4, 2), 0.0)}, OPENFIELD_NWB_BODYPARTS),
    DLC_H5: ("load", "deeplabcut", [""], {"": ((2330, 4, 2), 0.0)}, OPENFIELD_BODYPARTS),
    DLC_NWB: ("load", "nwb", [""], {"": ((2330, 4, 2), 0.0)}, OPENFIELD_NWB_BODYPARTS),
    DLC_CSV: ("load", "deeplabcut", [""], {"": ((2330, 4, 2), 0.0)}, OPENFIELD_BODYPARTS),
    DLC_CSV_MISSING: ("load", "deeplabcut", [""], {"": ((2330, 4, 2), 2 / (2330 * 4))}, OPENFIELD_BODYPARTS),
    MADLC_CSV: ("load", "deeplabcut", ["adult", "juvenile"],
                {"adult": ((5700, 7, 2), 0.0), "juvenile": ((5700, 7, 2), 0.0)},
                ["nose", "leftear", "rightear", "neck", "lefthip", "righthip", "tail"]),
    BORIS: ("refuse", "deeplabcut", "is a BORIS behaviour-event export .* not pose tracking"),
    "lightning_pose/180607_004.mirror-mouse.rng=0.csv":
        ("load", "deeplabcut", [""], {"": ((2000, 8, 2), 0.0)},
         ["paw1LH_top", "paw2LF_top", "paw3RF_top", "paw4RH_top", "paw1LH_bot", "paw2LF_bot",
          "paw3RF_bot", "paw4RH_bot"]),
    "lightning_pose/ibl-paw.right.rng=0.csv":
        ("load", "deeplabcut", [""], {"": ((2500, 2, 2), 0.0)}, ["paw_l", "paw_r"]),
    MABE_H5: ("refuse", "deeplabcut", r"no 'likelihood' coordinate \(coords found: x, y\)"),
    OLD_SLEAP_H5: ("refuse", "sleap", "no 'point_scores' dataset"),
    "sleap_flies/analysis_example_predictions.slp":
        ("load", "sleap", ["track0", "track1"],
         {"track0": ((3000, 13, 2), 0.016718), "track1": ((3000, 13, 2), 0.02241)}, FLY13),
    "sleap_flies/centered_pair_predictions.slp":
        ("load", "sleap", [f"track{i}" for i in range(27)],
         {"track0": ((1100, 24, 2), 0.062083), "track1": ((1100, 24, 2), 0.102197)},
         ["head", "neck", "thorax", "abdomen"]),
    "sleap_flies/clip_proofread_13node.slp":
        ("load", "sleap", ["track0", "track1"],
         {"track0": ((1500, 13, 2), 0.024718), "track1": ((1500, 13, 2), 0.007949)}, FLY13),
}


def test_every_shared_file_is_covered():
    if not POSE_DIR.is_dir():
        pytest.skip("../shared/data/pose not found: real-data tests need the shared folder beside the project")
    present = {
        str(f.relative_to(POSE_DIR)) for f in POSE_DIR.rglob("*") if f.is_file() and f.name != "README.md"
    }
    assert present == set(SHARED_FILES)


@pytest.mark.parametrize("relative", sorted(SHARED_FILES))
def test_shared_file_loads_or_is_refused(relative):
    path = pose_file(relative)
    expected = SHARED_FILES[relative]
    if expected[0] == "refuse":
        _, fmt, message = expected
        with pytest.raises(InputError, match=message) as err:
            if fmt is None:
                infer_format(path)
            else:
                load_session(path, fmt, "x")
        assert str(err.value).startswith(f"{path}: ")
        return
    _, fmt, animals, per_animal, leading = expected
    assert infer_format(path) == fmt
    assert list_animals(path, fmt) == animals
    for animal, (shape, nan_fraction) in per_animal.items():
        kp = load_session(path, fmt, "x", animal=animal)
        assert kp.coordinates.shape == shape
        assert kp.bodyparts[: len(leading)] == leading and len(kp.bodyparts) == shape[1]
        assert np.isnan(kp.coordinates[..., 0]).mean() == pytest.approx(nan_fraction, abs=1e-6)
        assert (kp.confidences[np.isnan(kp.coordinates).any(axis=2)] == 0).all()
        assert kp.animal == animal and kp.format == fmt


def test_boris_events_are_not_a_pose_file():
    path = pose_file(BORIS)
    assert sniff_format(path) is None
    with pytest.raises(InputError, match="BORIS behaviour-event export .* it has no keypoints"):
        infer_format(path)
    with pytest.raises(InputError, match="BORIS"):
        list_animals(path, "anipose")


# --------------------------------------------------------------------------- frame rate from the video



@pytest.mark.parametrize("name", ["clip.mp4", "clip.avi"])
def test_video_info_reads_fps_and_frames(tmp_path, name):
    info = video_info(write_video(tmp_path / name, 12, fps=25.0))
    assert (info.fps, info.n_frames) == (25.0, 12)


def test_fps_from_video_and_disagreements(tmp_path):
    path = tmp_path / "pose.csv"
    dlc_frame(["nose", "tail"], n=10).to_csv(path)
    video = write_video(tmp_path / "pose.mp4", 10, fps=25.0)
    kp = load_session(path, "deeplabcut", "p", video=str(video))
    assert (kp.fps, kp.fps_source) == (25.0, "video")
    assert kp.extra_attrs["video"] == str(video) and kp.extra_attrs["video_frames"] == 10
    kp = load_session(path, "deeplabcut", "p", video=str(video), fps=25.1)  # within 1 %
    assert (kp.fps, kp.fps_source) == (25.0, "video")
    assert load_session(path, "deeplabcut", "p", video="", fps=30).fps_source == "table"
    assert load_session(path, "deeplabcut", "p", video=float("nan")).fps_source == ""
    with pytest.raises(InputError, match=f"the video {video} says 25 fps but the sessions table says 30"):
        load_session(path, "deeplabcut", "p", video=str(video), fps=30)
    short = write_video(tmp_path / "short.avi", 4, fps=25.0)
    with pytest.raises(InputError, match="has 10 frames but its video .*short.avi has only 4"):
        load_session(path, "deeplabcut", "p", video=str(short))
    with pytest.raises(InputError, match="video .*missing.mp4 not found"):
        load_session(path, "deeplabcut", "p", video=str(tmp_path / "missing.mp4"))
    (tmp_path / "broken.mp4").write_text("not a video")
    with pytest.raises(InputError, match="cannot be opened by OpenCV"):
        load_session(path, "deeplabcut", "p", video=str(tmp_path / "broken.mp4"))
    # the file's own rate wins over the video's, and the two must agree
    write_nwb(tmp_path / "rate.nwb", n=10, rate=25.0)
    assert load_session(tmp_path / "rate.nwb", "nwb", "r", video=str(video)).fps_source == "file"
    fast = write_video(tmp_path / "fast.mp4", 10, fps=50.0)
    with pytest.raises(InputError, match="the file says 25 fps but the video .*fast.mp4 says 50"):
        load_session(tmp_path / "rate.nwb", "nwb", "r", video=str(fast))


# --------------------------------------------------------------------------- more silent mis-loads


def write_sleap_anipose(path: Path, n_frames=8, n_tracks=2, n_nodes=3, scores=True):
    tracks = np.arange(n_frames * n_tracks * n_nodes * 3, dtype=float).reshape(n_frames, n_tracks, n_nodes, 3)
    with h5py.File(path, "w") as f:
        f["tracks"] = tracks
        if scores:
            f["point_scores"] = np.full((n_frames, n_tracks, n_nodes), 0.5)
    return tracks


def test_sleap_anipose_multi_animal_becomes_sessions(tmp_path):
    path = tmp_path / "points3d.h5"
    tracks = write_sleap_anipose(path)
    assert sniff_format(path) == "sleap-anipose"
    assert list_animals(path, "sleap-anipose") == ["track0", "track1"]
    kp = load_session(path, "sleap-anipose", "p.track1", animal="track1")
    assert kp.coordinates.shape == (8, 3, 3) and kp.bodyparts == ["bodypart0", "bodypart1", "bodypart2"]
    np.testing.assert_array_equal(kp.coordinates, tracks[:, 1])
    assert (kp.confidences == 0.5).all()
    table = discover_sessions([str(tmp_path)])
    assert table["session"].tolist() == ["points3d.track0", "points3d.track1"]
    assert set(table["format"]) == {"sleap-anipose"}
    single = tmp_path / "one" / "solo.h5"
    single.parent.mkdir()
    write_sleap_anipose(single, n_tracks=1, scores=False)
    assert list_animals(single, "sleap-anipose") == [""]
    kp = load_session(single, "sleap-anipose", "solo")
    assert (kp.confidences == 1).all() and "none in the file" in kp.extra_attrs["confidences"]


def test_sleap_anipose_wrong_layouts_are_refused(tmp_path):
    analysis = tmp_path / "analysis.h5"
    with h5py.File(analysis, "w") as f:
        f["tracks"] = np.zeros((2, 2, 3, 10))
        f["point_scores"] = np.ones((2, 3, 10))
        f["node_names"] = np.array([b"a", b"b", b"c"])
    with pytest.raises(InputError, match="is a SLEAP analysis h5 .* use format 'sleap'"):
        load_session(analysis, "sleap-anipose", "x")
    flat = tmp_path / "flat.h5"
    with h5py.File(flat, "w") as f:
        f["tracks"] = np.zeros((10, 3, 3))
    with pytest.raises(InputError, match=r"'tracks' has shape \(10, 3, 3\), not sleap-anipose's"):
        list_animals(flat, "sleap-anipose")
    scores = tmp_path / "scores.h5"
    with h5py.File(scores, "w") as f:
        f["tracks"] = np.zeros((10, 1, 3, 3))
        f["point_scores"] = np.ones((10, 3))
    with pytest.raises(InputError, match=r"'point_scores' has shape \(10, 3\), expected \(10, 1, 3\)"):
        load_session(scores, "sleap-anipose", "x")


def anipose_columns(n=5, bodyparts=("nose", "tail"), fnum=None):
    cols = {}
    for bp in bodyparts:
        for c in ("x", "y", "z"):
            cols[f"{bp}_{c}"] = np.arange(n, dtype=float)
        cols[f"{bp}_error"] = np.zeros(n)
        cols[f"{bp}_score"] = np.ones(n)
    cols["fnum"] = np.arange(n) if fnum is None else fnum
    return cols


def test_anipose_without_scores_or_with_frame_gaps_is_refused(tmp_path):
    cols = anipose_columns()
    del cols["tail_score"]
    path = tmp_path / "noscore.csv"
    pd.DataFrame(cols).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"no score column for bodyparts \['tail'\]"):
        load_session(path, "anipose", "a")
    gaps = tmp_path / "gaps.csv"
    pd.DataFrame(anipose_columns(fnum=np.array([0, 1, 2, 10, 11]))).to_csv(gaps, index=False)
    with pytest.raises(InputError, match="'fnum' column is not consecutive frames"):
        load_session(gaps, "anipose", "a")
    offset = tmp_path / "offset.csv"  # a contiguous stretch not starting at 0 is fine
    pd.DataFrame(anipose_columns(fnum=np.arange(100, 105))).to_csv(offset, index=False)
    assert load_session(offset, "anipose", "a").coordinates.shape == (5, 2, 3)


def write_dannce(path: Path, n=12, k=4, sample_ids=None, layout="frames,3,k"):
    from scipy.io import savemat

    pred = np.random.default_rng(0).normal(size=(n, 3, k))
    if layout == "frames,k,3":
        pred = pred.transpose(0, 2, 1)
    data = {"pred": pred, "p_max": np.ones((n, k))}
    if sample_ids is not None:
        data["sampleID"] = np.asarray(sample_ids, dtype=float)[None, :]
    savemat(path, data)
    return pred


def test_dannce_sample_stride_and_refusals(tmp_path):
    path = tmp_path / "stride.mat"
    write_dannce(path, sample_ids=np.arange(12) * 5 + 1)
    kp = load_session(path, "dannce", "d")
    assert kp.coordinates.shape == (12, 4, 3) and kp.extra_attrs["sample_stride"] == 5
    # a 100 fps video predicted every 5th frame is a 20 fps session
    video = write_video(tmp_path / "stride.mp4", 60, fps=100.0)
    kp = load_session(path, "dannce", "d", video=str(video))
    assert (kp.fps, kp.fps_source) == (20.0, "video")
    uneven = tmp_path / "uneven.mat"
    write_dannce(uneven, sample_ids=list(range(6)) + list(range(100, 106)))
    with pytest.raises(InputError, match="not evenly spaced in time .* consecutive frames"):
        load_session(uneven, "dannce", "d")
    layout = tmp_path / "layout.mat"
    write_dannce(layout, layout="frames,k,3")
    with pytest.raises(InputError, match=r"'pred' has shape \(12, 4, 3\), not DANNCE's"):
        load_session(layout, "dannce", "d")
    nopred = tmp_path / "nopred.mat"
    from scipy.io import savemat

    savemat(nopred, {"something": np.zeros(3)})
    with pytest.raises(InputError, match="has no 'pred' variable"):
        list_animals(nopred, "dannce")


def test_nwb_series_outside_the_skeleton_are_refused(tmp_path):
    from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton, Skeletons
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="t", identifier="t",
                  session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    skeleton = Skeleton(name="mouse", nodes=["nose"])
    series = [PoseEstimationSeries(name=b, description=b, data=np.zeros((5, 2)), unit="px",
                                   reference_frame="top left", confidence=np.ones(5), rate=30.0)
              for b in ("nose", "tail")]
    module = nwb.create_processing_module(name="behavior", description="pose")
    module.add(Skeletons(skeletons=[skeleton]))
    module.add(PoseEstimation(name="PoseEstimation", pose_estimation_series=series, description="d",
                              skeleton=skeleton, source_software="test"))
    path = tmp_path / "extra.nwb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "w") as nwb_io:
            nwb_io.write(nwb)
    with pytest.raises(InputError, match=r"PoseEstimationSeries \['tail'\] are not nodes .* silently drop"):
        load_session(path, "nwb", "x")


def test_slp_with_untracked_instances_is_refused(tmp_path):
    import sleap_io as sio

    skeleton = sio.Skeleton(["head", "tail"])
    video = sio.Video(filename="fake.mp4")
    frames = [
        sio.LabeledFrame(video=video, frame_idx=i, instances=[
            sio.PredictedInstance.from_numpy(np.array([[i, 1.0], [i, 2.0]]) + k, skeleton=skeleton,
                                             point_scores=np.ones(2), score=1.0)
            for k in range(2)
        ])
        for i in range(4)
    ]
    labels = sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton])
    path = tmp_path / "untracked.slp"
    labels.save(str(path))
    with pytest.raises(InputError, match="up to 2 instances but no tracks"):
        list_animals(path, "sleap")
