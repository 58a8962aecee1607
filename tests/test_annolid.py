"""Tests for the annolid format (kpms_flow.formats.annolid through formats.load_session/list_animals)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, shared_pose
from kpms_flow.formats import annolid
from kpms_flow.formats import FORMATS, list_animals, load_session, sniff_format
from kpms_flow.keypoints import InputError, read_session, write_session
from kpms_flow.sessions import discover_sessions, infer_format, read_sessions_table
from conftest import write_video

BODYPARTS = ["nose", "left_ear", "right_ear", "tail_base"]


# --------------------------------------------------------------------------- synthetic folders


def point(label, x, y, score=None, group_id=None, **more):
    shape = {"label": label, "points": [[x, y]], "group_id": group_id, "shape_type": "point",
             "flags": {}, "visible": True, "description": "test"}
    if score is not None:
        shape["score"] = score
    shape.update(more)
    return shape


def record(frame, shapes, **more):
    return {"frame": frame, "version": "1.6.10", "imagePath": "", "imageHeight": 480,
            "imageWidth": 640, "shapes": shapes, "flags": {}, "caption": None, "otherData": {}, **more}


def write_store(folder: Path, video: str, records, raw_lines=()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{video}{annolid.STORE_SUFFIX}"
    lines = [json.dumps(r) for r in records] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_frame_json(folder: Path, video: str, frame: int, data: dict) -> Path:
    path = folder / f"{video}_{frame:09d}.json"
    path.write_text(json.dumps(data))
    return path



def two_mice(folder: Path, video="cage", frames=(0, 1, 2)) -> Path:
    records = [
        record(f, [point(bp, 10 * f + k, 100 + k, score=0.5 + 0.1 * k, group_id=g)
                   for g in (0, 1) for k, bp in enumerate(BODYPARTS)])
        for f in frames
    ]
    write_store(folder, video, records)
    return folder


# --------------------------------------------------------------------------- real sample folders


def test_real_inference_store_two_mice_missing_frame_and_point():
    folder = shared_pose("annolid", "inference_store_only", "two_mice_demo")
    assert list_animals(folder, "annolid") == ["0", "1"]
    kp0 = load_session(folder, "annolid", "two_mice_demo.0", animal="0")
    kp1 = load_session(folder, "annolid", "two_mice_demo.1", animal="1")
    for kp in (kp0, kp1):
        assert kp.coordinates.shape == (6, 4, 2)  # frames 0..5 (last frame 5), no video
        assert kp.bodyparts == BODYPARTS
        assert (kp.format, kp.fps, kp.fps_source) == ("annolid", None, "")
        assert np.isnan(kp.coordinates[3]).all() and (kp.confidences[3] == 0).all()  # frame 3 missing
    np.testing.assert_allclose(kp0.coordinates[0, 0], [200.9, 200.66])
    assert kp0.confidences[0, 0] == pytest.approx(0.7301)
    np.testing.assert_allclose(kp1.coordinates[5, 3], [464.73, 267.38])
    # mouse 1's tail_base was dropped in frame 4 (low score): missing, confidence 0
    assert np.isnan(kp1.coordinates[4, 3]).all() and kp1.confidences[4, 3] == 0
    assert np.isnan(kp0.coordinates[..., 0]).mean() == pytest.approx(4 / 24)
    assert np.isnan(kp1.coordinates[..., 0]).mean() == pytest.approx(5 / 24)
    assert kp0.extra_attrs["annolid_video"] == "two_mice_demo"
    # the store file itself is an equivalent path
    store = folder / "two_mice_demo_annotations.ndjson"
    same = load_session(store, "annolid", "s", animal="1")
    np.testing.assert_array_equal(same.coordinates, kp1.coordinates)
    assert same.source_sha256 == kp1.source_sha256 == annolid.source_digest(annolid.find_source(folder))
    assert sniff_format(folder) == sniff_format(store) == "annolid"


def test_real_tracker_per_frame_json_invisible_point_and_polygons():
    folder = shared_pose("annolid", "tracker_per_frame_json")
    assert list_animals(folder, "annolid") == ["0", "1"]
    kp0 = load_session(folder, "annolid", "t.0", animal="0")
    kp1 = load_session(folder, "annolid", "t.1", animal="1")
    for kp in (kp0, kp1):
        assert kp.coordinates.shape == (3, 4, 2)
        assert kp.bodyparts == BODYPARTS  # the mouse_a/mouse_b polygons are not keypoints
        assert not np.isnan(kp.coordinates).any()
    # frame 2, mouse 1 tail_base has visible: false: position kept, confidence 0
    np.testing.assert_allclose(kp1.coordinates[2, 3], [455.37, 262.41])
    assert kp1.confidences[2, 3] == 0.0 and kp1.extra_attrs["annolid_hidden_points"] == 1
    assert kp1.confidences[1, 3] == pytest.approx(0.9161)
    assert kp0.extra_attrs["annolid_instance_shapes"] == "mouse_a"
    assert kp1.extra_attrs["annolid_instance_shapes"] == "mouse_b"
    assert kp0.extra_attrs["annolid_frame_json"] == 3


def test_real_single_animal_multipeak():
    folder = shared_pose("annolid", "single_animal_multipeak")
    assert list_animals(folder, "annolid") == [""]
    kp = load_session(folder, "annolid", "one_mouse_demo")
    assert kp.coordinates.shape == (2, 4, 2) and kp.bodyparts == BODYPARTS
    assert kp.animal == ""
    assert not np.isnan(kp.coordinates).any()
    # tail_base only exists as a secondary peak (peak_rank 1): kept with its low score
    np.testing.assert_allclose(kp.confidences[:, 3], [0.2204, 0.2696])
    with pytest.raises(InputError, match="holds a single animal"):
        load_session(folder, "annolid", "x", animal="0")


@pytest.mark.parametrize("name", ["two_mice_demo_tracking.csv", "two_mice_demo_tracked.csv"])
def test_real_derived_csvs_are_refused_pointing_to_the_folder(name):
    path = shared_pose("annolid", "inference_store_only", name)
    folder = path.parent / "two_mice_demo"
    for call in (lambda: load_session(path, "annolid", "x"), lambda: list_animals(path, "annolid"),
                 lambda: load_session(path, "deeplabcut", "x"), lambda: infer_format(path)):
        with pytest.raises(InputError) as err:
            call()
        message = str(err.value)
        assert message.startswith(f"{path}: is Annolid's derived")
        assert f"use its results folder {folder} (format annolid)" in message


def test_real_frame_json_and_parent_folder_are_refused():
    frame = shared_pose("annolid", "tracker_per_frame_json", "two_mice_demo_000000001.json")
    with pytest.raises(InputError, match="one Annolid per-frame LabelMe file"):
        load_session(frame, "annolid", "x")
    with pytest.raises(InputError, match="one Annolid per-frame LabelMe file"):
        infer_format(frame)
    with pytest.raises(InputError, match="one Annolid per-frame LabelMe file"):
        load_session(frame, "freipose", "x")
    parent = shared_pose("annolid", "inference_store_only")
    with pytest.raises(InputError, match="holds no Annolid annotations.*results folders below it: .*two_mice_demo"):
        load_session(parent, "annolid", "x")


def test_real_discovery_lists_one_session_per_animal():
    root = shared_pose("annolid")
    table = discover_sessions([str(root / "inference_store_only"), str(root / "single_animal_multipeak")])
    assert table["session"].tolist() == ["two_mice_demo.0", "two_mice_demo.1", "one_mouse_demo"]
    assert table["path"].tolist() == [
        str(root / "inference_store_only" / "two_mice_demo")] * 2 + [str(root / "single_animal_multipeak")]
    assert set(table["format"]) == {"annolid"}
    assert table["animal"].tolist() == ["0", "1", ""]
    skipped = sorted(Path(p).name for p, _ in table.attrs["skipped"])
    assert skipped == ["two_mice_demo_tracked.csv", "two_mice_demo_tracking.csv"]
    # two folders of the same video name give the same session names: refused, as for other formats
    with pytest.raises(InputError, match="duplicate session names"):
        discover_sessions([str(root)], format="annolid")


# --------------------------------------------------------------------------- the rules


def test_later_store_lines_win_and_frame_json_overrides(tmp_path):
    folder = tmp_path / "vid"
    write_store(folder, "vid", [
        record(0, [point("nose", 1, 1, score=0.9)]),
        record(1, [point("nose", 2, 2, score=0.9)]),
        record(0, [point("nose", 5, 5, score=0.8)]),  # appended later: replaces frame 0
        record(2, [point("nose", 3, 3, score=0.9)]),
    ])
    write_frame_json(folder, "vid", 1, {"version": "1.6.10", "shapes": [point("nose", 7, 7)]})  # hand label
    write_frame_json(folder, "vid", 2, {"annotation_store": "vid_annotations.ndjson", "frame": 2,
                                        "version": 1, "imagePath": None})  # a stub: store stays
    kp = load_session(folder, "annolid", "vid")
    np.testing.assert_array_equal(kp.coordinates[:, 0], [[5, 5], [7, 7], [3, 3]])
    np.testing.assert_allclose(kp.confidences[:, 0], [0.8, 1.0, 0.9])
    assert kp.extra_attrs["annolid_hand_labels"] == 1
    write_frame_json(folder, "vid", 3, {"annotation_store": "vid_annotations.ndjson", "frame": 3})
    with pytest.raises(InputError, match="stub pointing to frame 3 .* has no record"):
        load_session(folder, "annolid", "vid")


def test_labels_animals_scores_visibility_and_duplicates(tmp_path):
    folder = tmp_path / "v"
    write_store(folder, "v", [record(0, [
        point("nose", 1, 1, score=0.9, instance_label="alice", group_id=0),
        point("n", 2, 2, score=0.8, display_label="tail", group_id=0, instance_label="alice"),
        point("nose", 3, 3, score=0.7, group_id=1),
        point("nose", 4, 4, instance_id=2, flags={"score": 0.6}),  # legacy score among flags
        point("tail", 5, 5, score=0.95, group_id=1, visible=False),
        # the same bodypart twice for one animal (multi-peak): the higher score wins
        point("tail", 6, 6, score=0.3, group_id=1, peak_rank=1),
        point("tail", 7, 7, score=0.4, group_id=1, peak_rank=0),
        {"label": "box", "points": [[0, 0], [9, 9]], "shape_type": "rectangle", "group_id": 1},
    ])])
    assert list_animals(folder, "annolid") == ["alice", "1", "2"]
    alice = load_session(folder, "annolid", "a", animal="alice")
    assert alice.bodyparts == ["nose", "tail"]  # display_label beats label
    np.testing.assert_array_equal(alice.coordinates[0], [[1, 1], [2, 2]])
    one = load_session(folder, "annolid", "b", animal="1")
    np.testing.assert_array_equal(one.coordinates[0], [[3, 3], [7, 7]])
    np.testing.assert_allclose(one.confidences[0], [0.7, 0.4])  # hidden 0.95 -> 0 < 0.4 < peaks
    assert one.extra_attrs["annolid_duplicate_points"] == 2
    two = load_session(folder, "annolid", "c", animal="2")
    np.testing.assert_allclose(two.confidences[0], [0.6, 0.0])
    assert np.isnan(two.coordinates[0, 1]).all()
    with pytest.raises(InputError, match=r"holds 3 animals \('alice', '1', '2'\)"):
        load_session(folder, "annolid", "x")
    with pytest.raises(InputError, match="has no animal 'bob'"):
        load_session(folder, "annolid", "x", animal="bob")


def test_bodyparts_order_from_config_and_unknown_labels(tmp_path):
    folder = two_mice(tmp_path / "cage")
    order = ["tail_base", "nose", "spine", "left_ear", "right_ear"]
    kp = load_session(folder, "annolid", "c", animal="0", bodyparts=order)
    assert kp.bodyparts == order
    assert np.isnan(kp.coordinates[:, 2]).all() and (kp.confidences[:, 2] == 0).all()  # never labelled
    default = load_session(folder, "annolid", "c", animal="0")
    np.testing.assert_array_equal(kp.coordinates[:, 0], default.coordinates[:, 3])
    with pytest.raises(InputError, match=r"labels \['left_ear', 'right_ear'\] are not in the configured bodyparts"):
        load_session(folder, "annolid", "c", animal="0", bodyparts=["nose", "tail_base"])
    # other formats ignore the keyword (the workflow reorders them later)
    dlc = load_session(shared_pose("dlc_openfield_mouse", "openfield_dlc_inference_example.csv"),
                       "deeplabcut", "d", bodyparts=["tailbase", "snout"])
    assert dlc.bodyparts == ["snout", "leftear", "rightear", "tailbase"]


def test_frame_count_and_fps_from_video(tmp_path):
    folder = two_mice(tmp_path / "cage", frames=(0, 3))
    kp = load_session(folder, "annolid", "c", animal="1", fps=30)
    assert kp.coordinates.shape[0] == 4 and (kp.fps, kp.fps_source) == (30.0, "table")
    # found beside the results folder: <parent>/<video>.mp4
    write_video(tmp_path / "cage.mp4", n_frames=10, fps=25.0)
    kp = load_session(folder, "annolid", "c", animal="1")
    assert kp.coordinates.shape == (10, 4, 2)
    assert np.isnan(kp.coordinates[4:]).all() and (kp.confidences[4:] == 0).all()
    assert (kp.fps, kp.fps_source) == (25.0, "video")
    assert kp.extra_attrs["video_frames"] == 10 and kp.extra_attrs["frames_from"] == "video"
    with pytest.raises(InputError, match="the video .*cage.mp4 says 25 fps but the sessions table says 30"):
        load_session(folder, "annolid", "c", animal="1", fps=30)
    # a video named explicitly wins; one shorter than the annotations is refused
    short = write_video(tmp_path / "short.avi", n_frames=3, fps=25.0)
    with pytest.raises(InputError, match="reach frame 3 but the video has 3 frames"):
        load_session(folder, "annolid", "c", animal="1", video=str(short))


def test_refusals(tmp_path):
    mixed = tmp_path / "mixed"
    write_store(mixed, "mixed", [record(0, [point("nose", 1, 1, group_id=0), point("nose", 2, 2)])])
    with pytest.raises(InputError, match="1 points have no instance_label/group_id/instance_id"):
        list_animals(mixed, "annolid")
    polygons = tmp_path / "poly"
    write_store(polygons, "poly", [record(0, [{"label": "m", "points": [[0, 0], [1, 1], [1, 0]],
                                               "shape_type": "polygon"}])])
    with pytest.raises(InputError, match="no point shapes"):
        load_session(polygons, "annolid", "p")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no Annolid annotations"):
        load_session(empty, "annolid", "e")
    with pytest.raises(InputError, match="not found"):
        load_session(tmp_path / "nope", "annolid", "e")
    two = tmp_path / "two"
    write_store(two, "a", [record(0, [point("nose", 1, 1)])])
    write_store(two, "b", [record(0, [point("nose", 1, 1)])])
    with pytest.raises(InputError, match="holds 2 Annolid annotation stores"):
        load_session(two, "annolid", "t")
    bad = tmp_path / "bad"
    write_store(bad, "bad", [record(0, [point("nose", 1, 1)])], raw_lines=["{not json}", json.dumps(record(1, []))])
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        load_session(bad, "annolid", "b")
    shape = tmp_path / "shape"
    write_store(shape, "shape", [record(0, [point("nose", "a", 1)])])
    with pytest.raises(InputError, match=r"frame 0 .* point \['a', 1\] is not numeric"):
        load_session(shape, "annolid", "s")


def test_truncated_last_line_and_legacy_records_without_frame(tmp_path):
    folder = tmp_path / "legacy"
    write_store(folder, "legacy", [
        {"imagePath": "legacy_000000004.png", "shapes": [point("nose", 4, 4, score=1.0)]},  # frame from name
        {"imagePath": "", "shapes": [point("nose", 0, 0, score=1.0)]},  # row index 1 -> frame 1
        record(2, [point("nose", 2, 2, score=1.0)]),
    ], raw_lines=['{"frame": 3, "shapes": [{"label": "no'])  # Annolid stopped mid-append
    kp = load_session(folder, "annolid", "l")
    assert kp.coordinates.shape == (5, 1, 2)
    np.testing.assert_array_equal(kp.coordinates[[1, 2, 4], 0, 0], [0, 2, 4])
    assert np.isnan(kp.coordinates[[0, 3]]).all()
    assert kp.extra_attrs["annolid_store_truncated_last_line"] == 4


def test_per_frame_json_only_folder_and_session_file_roundtrip(tmp_path):
    folder = tmp_path / "jsononly"
    folder.mkdir()
    for f in range(3):
        write_frame_json(folder, "clip", f, {"shapes": [point("nose", f, f, score=0.9), point("tail", f, 0, score=0.8)]})
    assert sniff_format(folder) == "annolid"
    kp = load_session(folder, "annolid", "clip")
    assert kp.coordinates.shape == (3, 2, 2) and kp.extra_attrs["annolid_store"] == ""
    out = tmp_path / "clip.h5"
    write_session(out, kp)
    back = read_session(out)
    np.testing.assert_array_equal(back.coordinates, kp.coordinates)
    assert back.format == "annolid" and back.source_path == str(folder)
    assert back.extra_attrs["annolid_video"] == "clip"


def test_discovery_and_sessions_table_accept_annolid(tmp_path):
    two_mice(tmp_path / "data" / "cage1", video="cage1")
    two_mice(tmp_path / "data" / "cage2", video="cage2")
    table = discover_sessions([str(tmp_path / "data")])
    assert table["session"].tolist() == ["cage1.0", "cage1.1", "cage2.0", "cage2.1"]
    assert table["path"].tolist()[0] == str(tmp_path / "data" / "cage1")
    store = tmp_path / "data" / "cage1" / f"cage1{annolid.STORE_SUFFIX}"
    assert discover_sessions([str(store)])["session"].tolist() == ["cage1.0", "cage1.1"]
    tsv = tmp_path / "sessions.tsv"
    table.to_csv(tsv, sep="\t", index=False)
    assert read_sessions_table(tsv)["format"].tolist() == ["annolid"] * 4


def test_sessions_schema_enum_lists_every_format():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "sessions.schema.yaml").read_text())
    assert tuple(schema["properties"]["format"]["enum"]) == FORMATS
    assert "annolid" in FORMATS
