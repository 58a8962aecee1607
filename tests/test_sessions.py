"""Tests for kpms_flow.sessions: discovery, the sessions table and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kpms_flow.keypoints import InputError
from kpms_flow.sessions import (
    COLUMNS,
    discover_sessions,
    infer_format,
    is_safe_name,
    main,
    read_sessions_table,
    safe_name,
)
from conftest import shared_pose as pose_dir

POSE_DIR = (Path(__file__).parents[1] / ".." / "shared" / "data" / "pose").resolve()



def write_dlc(path: Path, bodyparts=("nose", "tail"), individuals=None, n=5, fmt=None):
    """Write a small DeepLabCut table (.csv or .h5 by suffix)."""
    if individuals:
        cols = pd.MultiIndex.from_product(
            [["DLC_scorer"], individuals, bodyparts, ["x", "y", "likelihood"]],
            names=["scorer", "individuals", "bodyparts", "coords"],
        )
    else:
        cols = pd.MultiIndex.from_product(
            [["DLC_scorer"], bodyparts, ["x", "y", "likelihood"]], names=["scorer", "bodyparts", "coords"]
        )
    df = pd.DataFrame(np.random.default_rng(0).uniform(size=(n, len(cols))), columns=cols)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path)
    else:
        df.to_hdf(path, key="df_with_missing")
    return path


def write_tsv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    return path


# --------------------------------------------------------------------------- names


def test_safe_name():
    assert safe_name("my mouse#1") == "my_mouse_1"
    assert safe_name("ok.name-1_x") == "ok.name-1_x"
    assert safe_name(".hidden") == "s.hidden"
    assert safe_name("-opt") == "s-opt"
    assert safe_name("_x") == "s_x"
    assert safe_name("") == "s"
    assert is_safe_name("a.b-c_1") and not is_safe_name("a/b") and not is_safe_name("..")
    assert not is_safe_name("_x")  # same pattern as the workflow's session wildcard


# --------------------------------------------------------------------------- discovery (temp files)


def test_discover_folder_recursive(tmp_path):
    write_dlc(tmp_path / "data" / "m1DLC_resnet50.h5")
    write_dlc(tmp_path / "data" / "day2" / "m2DLC_resnet50.csv")
    (tmp_path / "data" / "notes.txt").write_text("not pose")
    (tmp_path / "data" / ".m3.h5.tmp").write_text("half-written")
    table = discover_sessions([str(tmp_path / "data")])
    assert list(table.columns) == COLUMNS
    # sorted by path: day2/ comes before m1DLC_resnet50.h5
    assert table["session"].tolist() == ["m2DLC_resnet50", "m1DLC_resnet50"]
    assert table["format"].tolist() == ["deeplabcut", "deeplabcut"]
    assert table["animal"].tolist() == ["", ""]
    assert table["train"].tolist() == [True, True] and table["train"].dtype == bool
    assert table["fps"].isna().all() and table["fps"].dtype == float
    assert table["group"].tolist() == ["", ""] and table["video"].tolist() == ["", ""]
    assert table["path"].tolist()[0] == str(tmp_path / "data" / "day2" / "m2DLC_resnet50.csv")
    assert table.attrs["skipped"] == []


def test_discover_multi_animal_one_row_per_animal(tmp_path):
    write_dlc(tmp_path / "pair cage#1.csv", individuals=["m 1", "m2"])
    table = discover_sessions([str(tmp_path / "pair cage#1.csv")])
    assert table["session"].tolist() == ["pair_cage_1.m_1", "pair_cage_1.m2"]
    assert table["animal"].tolist() == ["m 1", "m2"]  # the animal keeps its real name


def test_discover_glob_and_dedup(tmp_path):
    write_dlc(tmp_path / "a.csv")
    write_dlc(tmp_path / "b.csv")
    table = discover_sessions([str(tmp_path / "*.csv"), str(tmp_path / "a.csv")])
    assert table["session"].tolist() == ["a", "b"]  # a.csv counted once


def test_discover_duplicates_are_an_error(tmp_path):
    write_dlc(tmp_path / "m1.h5")
    write_dlc(tmp_path / "m1.csv")
    with pytest.raises(InputError, match="duplicate session names") as err:
        discover_sessions([str(tmp_path)])
    assert str(tmp_path / "m1.h5") in str(err.value) and str(tmp_path / "m1.csv") in str(err.value)


def test_discover_skips_unusable_found_files_but_not_named_ones(tmp_path):
    write_dlc(tmp_path / "good.csv")
    bad = tmp_path / "events.csv"
    pd.DataFrame({"time": [1, 2], "event": ["a", "b"]}).to_csv(bad, index=False)
    table = discover_sessions([str(tmp_path)])
    assert table["session"].tolist() == ["good"]
    assert [p for p, _ in table.attrs["skipped"]] == [str(bad)]
    assert "pass --format" in table.attrs["skipped"][0][1]
    with pytest.raises(InputError, match="cannot tell the pose format"):
        discover_sessions([str(bad)])
    with pytest.raises(InputError, match="not a DeepLabCut table"):
        discover_sessions([str(bad)], format="deeplabcut")


def test_discover_errors(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        discover_sessions([str(tmp_path / "missing.h5")])
    with pytest.raises(InputError, match="matches no pose files"):
        discover_sessions([str(tmp_path / "*.h5")])
    with pytest.raises(InputError, match="unknown format 'dlc'"):
        discover_sessions([str(tmp_path)], format="dlc")
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(InputError, match=r"read by keypoint-moseq's freipose loader\); pass --format"):
        infer_format(tmp_path / "x.json")
    (tmp_path / "only.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="no pose sessions found"):
        discover_sessions([str(tmp_path)])


# --------------------------------------------------------------------------- discovery (real folders)


def test_discover_real_multi_animal_folder():
    folder = pose_dir("ethome_social_mice")
    table = discover_sessions([str(folder)])
    stem = "e3v813a-20210610T122332-122642DLC_dlcrnetms5_pilot_studySep24shuffle1_100000_el_filtered"
    assert table["session"].tolist() == [f"{stem}.adult", f"{stem}.juvenile"]
    assert table["animal"].tolist() == ["adult", "juvenile"]
    assert set(table["format"]) == {"deeplabcut"}
    # the BORIS annotation csv is not pose data: skipped, with the reason
    assert [Path(p).name for p, _ in table.attrs["skipped"]] == [
        "e3v813a-20210610T122332-122642_reencode.BORIS_annotations.csv"
    ]
    assert "BORIS behaviour-event export" in table.attrs["skipped"][0][1]
    assert "not pose tracking" in table.attrs["skipped"][0][1]


def test_discover_real_mixed_formats():
    table = discover_sessions([str(pose_dir("deepof_topview"))])
    assert dict(zip(table["session"], table["format"])) == {
        "testDLC_h5_table": "deeplabcut",
        "testDLC_sleap": "sleap",
        "testDLC_square_arena": "deeplabcut",
    }
    skipped = dict(table.attrs["skipped"])
    (reason,) = [r for p, r in skipped.items() if p.endswith("901frames_2keys.h5")]
    assert "2 pandas keys" in reason


def test_discover_real_sleap_folder():
    table = discover_sessions([str(pose_dir("sleap_flies"))])
    counts = table.groupby("path").size()
    assert {Path(p).name: n for p, n in counts.items()} == {
        "analysis_example_predictions.slp": 2,
        "centered_pair_predictions.slp": 27,
        "clip_proofread_13node.slp": 2,
    }
    assert "clip_proofread_13node.track1" in set(table["session"])
    (reason,) = [r for _, r in table.attrs["skipped"]]  # the old analysis h5
    assert "point_scores" in reason


def test_discover_real_openfield_needs_format():
    folder = pose_dir("dlc_openfield_mouse")
    # the .h5 and the .nwb made from it share a stem
    with pytest.raises(InputError, match="m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000: .*\\.h5, .*\\.nwb"):
        discover_sessions([str(folder)])
    table = discover_sessions([str(folder)], format="deeplabcut")
    assert sorted(table["session"]) == [
        "m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000",
        "openfield_dlc_inference_example",
        "openfield_dlc_inference_example_missingdata",
    ]


def test_discover_real_annolid_folder_skips_derived_csvs():
    table = discover_sessions([str(pose_dir("annolid/inference_store_only"))])
    assert table["session"].tolist() == ["two_mice_demo.0", "two_mice_demo.1"]
    assert set(table["format"]) == {"annolid"}
    assert table["path"].tolist() == [str(pose_dir("annolid/inference_store_only/two_mice_demo"))] * 2
    reasons = dict(table.attrs["skipped"])
    assert sorted(Path(p).name for p in reasons) == ["two_mice_demo_tracked.csv", "two_mice_demo_tracking.csv"]
    assert all("Annolid's derived" in r and "use its results folder" in r for r in reasons.values())


def test_infer_format_of_annolid_and_sleap_anipose(tmp_path):
    store = tmp_path / "vid" / "vid_annotations.ndjson"
    store.parent.mkdir()
    store.write_text('{"frame": 0, "shapes": [{"label": "nose", "points": [[1, 2]], "shape_type": "point"}]}\n')
    assert infer_format(store) == "annolid"
    assert infer_format(store.parent) == "annolid"
    import h5py

    with h5py.File(tmp_path / "points3d.h5", "w") as f:
        f["tracks"] = np.zeros((4, 2, 3, 3))
    assert infer_format(tmp_path / "points3d.h5") == "sleap-anipose"


def test_cli_annolid_folder(tmp_path, capsys):
    folder = tmp_path / "pose" / "cage"
    folder.mkdir(parents=True)
    shape = '{"label": "nose", "points": [[%d, 1]], "group_id": %d, "shape_type": "point", "score": 0.9}'
    lines = ['{"frame": %d, "shapes": [%s, %s]}' % (f, shape % (f, 0), shape % (f, 1)) for f in range(3)]
    (folder / "cage_annotations.ndjson").write_text("\n".join(lines) + "\n")
    out = tmp_path / "sessions.tsv"
    assert main([str(tmp_path / "pose"), "--format", "annolid", "--fps", "30", "--output", str(out)]) == 0
    assert "wrote 2 sessions from 1 files" in capsys.readouterr().out
    table = read_sessions_table(out)
    assert table["session"].tolist() == ["cage.0", "cage.1"]
    assert table["format"].tolist() == ["annolid", "annolid"]
    assert table["path"].tolist() == [str(folder)] * 2


def test_discover_real_unsafe_stem():
    table = discover_sessions([str(pose_dir("lightning_pose") / "*.csv")])
    assert table["session"].tolist() == ["180607_004.mirror-mouse.rng_0", "ibl-paw.right.rng_0"]


# --------------------------------------------------------------------------- read_sessions_table


def test_read_table_normalises_types(tmp_path):
    path = write_tsv(tmp_path / "sessions.tsv", [
        ["session", "path", "format", "animal", "fps", "group", "train", "video", "notes"],
        ["s1", "a.h5", "deeplabcut", "", "30", "ctrl", "", "", "first"],
        ["s2", "b.slp", "sleap", "track0", "", "", "no", "v.mp4", ""],
        ["s3", "c.csv", "deeplabcut", "", " 29.97 ", "ko", "YES", "", ""],
        ["s4", "d.csv", "deeplabcut", "", "", "", "0", "", ""],
        ["s5", "e.csv", "deeplabcut", "", "", "", "True", "", ""],
    ])
    table = read_sessions_table(path)
    assert list(table.columns) == COLUMNS + ["notes"]
    assert table["train"].tolist() == [True, False, True, False, True]
    assert table["train"].dtype == bool
    assert table["fps"].dtype == float
    assert table["fps"].iloc[0] == 30.0 and table["fps"].iloc[2] == 29.97 and math.isnan(table["fps"].iloc[1])
    assert table["animal"].tolist() == ["", "track0", "", "", ""]
    assert table["video"].tolist() == ["", "v.mp4", "", "", ""]
    assert table["group"].tolist() == ["ctrl", "", "ko", "", ""]
    assert table["notes"].iloc[0] == "first"


def test_read_demo_table():
    demo = Path(__file__).parents[1] / "config" / "demo_sessions.tsv"
    if not demo.exists():
        pytest.skip("config/demo_sessions.tsv not present")
    table = read_sessions_table(demo)
    assert table["train"].dtype == bool and table["fps"].dtype == float
    assert table["session"].map(is_safe_name).all()


def test_read_table_minimal_columns(tmp_path):
    path = write_tsv(tmp_path / "s.tsv", [["session", "path", "format"], ["s1", "a.h5", "nwb"]])
    table = read_sessions_table(path)
    assert list(table.columns) == COLUMNS
    row = table.iloc[0]
    assert (row["animal"], row["group"], row["video"], bool(row["train"])) == ("", "", "", True)
    assert math.isnan(row["fps"])


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["session", "path"], ["s1", "a.h5"]], r"missing required column\(s\) format; found: session, path"),
        ([["session", "path", "format"], ["s1", "a.h5", "deeplabcut"], ["s1", "b.h5", "deeplabcut"]],
         r"duplicate session names: s1 \(rows 1, 2\)"),
        ([["session", "path", "format"], ["my mouse", "a.h5", "deeplabcut"]],
         r"row 1 \(session 'my mouse'\): session name is not safe.*'my_mouse'"),
        ([["session", "path", "format"], ["../x", "a.h5", "deeplabcut"]], "not safe for file paths"),
        ([["session", "path", "format"], ["_x", "a.h5", "deeplabcut"]], "starting with a letter or digit"),
        ([["session", "path", "format"], ["s1", "a.h5", "DLC"]],
         r"row 1 \(session 's1'\): unknown format 'DLC'; valid formats are: deeplabcut, sleap"),
        ([["session", "path", "format"], ["s1", "", "deeplabcut"]], r"row 1: empty 'path'"),
        ([["session", "path", "format", "train"], ["s1", "a.h5", "nwb", "maybe"]], "train 'maybe' is not a boolean"),
        ([["session", "path", "format", "fps"], ["s1", "a.h5", "nwb", "fast"]], "fps 'fast' is not a number"),
        ([["session", "path", "format", "fps"], ["s1", "a.h5", "nwb", "-3"]], "must be a positive number"),
        ([["session", "path", "format"]], "has no rows"),
    ],
)
def test_read_table_errors(tmp_path, rows, message):
    path = write_tsv(tmp_path / "sessions.tsv", rows)
    with pytest.raises(InputError, match=message) as err:
        read_sessions_table(path)
    assert str(path) in str(err.value)


def test_read_table_missing_and_comma_separated(tmp_path):
    with pytest.raises(InputError, match="sessions table not found"):
        read_sessions_table(tmp_path / "none.tsv")
    path = tmp_path / "s.tsv"
    path.write_text("session,path,format\ns1,a.h5,nwb\n")
    with pytest.raises(InputError, match="looks comma-separated"):
        read_sessions_table(path)
    path.write_text("")
    with pytest.raises(InputError, match="is empty"):
        read_sessions_table(path)


# --------------------------------------------------------------------------- CLI


def test_cli_writes_table_that_reads_back(tmp_path, capsys):
    write_dlc(tmp_path / "pose" / "pair.csv", individuals=["a", "b"])
    write_dlc(tmp_path / "pose" / "solo.h5")
    out = tmp_path / "config" / "sessions.tsv"
    assert main([str(tmp_path / "pose"), "--fps", "30", "--group", "ctrl", "--output", str(out)]) == 0
    assert "wrote 3 sessions from 2 files" in capsys.readouterr().out
    table = read_sessions_table(out)
    assert table["session"].tolist() == ["pair.a", "pair.b", "solo"]
    assert table["fps"].tolist() == [30.0, 30.0, 30.0]
    assert table["group"].tolist() == ["ctrl"] * 3
    assert table["train"].tolist() == [True] * 3
    assert table["animal"].tolist() == ["a", "b", ""]
    assert [p.name for p in out.parent.iterdir()] == ["sessions.tsv"]  # no temp files left


def test_cli_error_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing"), "--output", str(tmp_path / "s.tsv")])
    assert exit_info.value.code == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "s.tsv").exists()
