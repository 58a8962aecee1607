"""Sessions that track extra points (an LED, an implant, arena corners) train one model on
``use_bodyparts`` (issue 15, item 1): real Snakemake, real keypoint-moseq, tiny iterations.

Every session is a 700-frame stretch of the shared DLC2NWB open-field file (snout, leftear,
rightear, tailbase) with different extra points added as DeepLabCut columns.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, TINY, shared_pose, snakemake
from kpms_flow.keypoints import InputError, SessionKeypoints, select_bodyparts, write_session
from kpms_flow.model import load_training_sessions
from kpms_flow.qa import outlier_qa

OPENFIELD = ("dlc_openfield_mouse", "m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5")
USED = ["snout", "leftear", "rightear", "tailbase"]
FRAMES = 700
# session -> (extra points, first frame, train); the LED of s1 was never tracked (all NaN), and
# s1 and s3 are the same stretch of video
SESSIONS = {
    "s1": (["LED"], 0, True),
    "s2": (["implant", "corner_tl", "corner_br"], 700, True),
    "s3": ([], 0, True),
    "held": (["tether"], 1400, False),
}


def with_extra_points(df: pd.DataFrame, extra: list[str], seed: int) -> pd.DataFrame:
    """The DeepLabCut table with extra bodyparts appended (x, y, likelihood each)."""
    rng = np.random.default_rng(seed)
    scorer = df.columns.get_level_values("scorer")[0]
    added = {}
    for name in extra:
        xy = rng.uniform(0, 300, size=2)
        untracked = name == "LED"
        added[(scorer, name, "x")] = np.full(len(df), np.nan if untracked else xy[0])
        added[(scorer, name, "y")] = np.full(len(df), np.nan if untracked else xy[1])
        added[(scorer, name, "likelihood")] = np.full(len(df), 0.0 if untracked else 0.99)
    table = pd.concat([df, pd.DataFrame(added, index=df.index)], axis=1)
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=df.columns.names)
    return table


def write_sessions(workdir: Path, sessions: dict, use_bodyparts) -> Path:
    source = pd.read_hdf(shared_pose(*OPENFIELD))
    pose = workdir / "pose"
    pose.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (session, (extra, start, train)) in enumerate(sessions.items()):
        path = pose / f"{session}.h5"
        stretch = source.iloc[start : start + FRAMES]
        with_extra_points(stretch, extra, seed=i).to_hdf(path, key="df_with_missing", mode="w")
        rows.append({"session": session, "path": str(path), "format": "deeplabcut", "animal": "",
                     "fps": 30, "group": "", "train": train, "video": ""})
    (workdir / "config").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(workdir / "config" / "sessions.tsv", sep="\t", index=False)
    config = {
        "sessions": "config/sessions.tsv",
        "use_bodyparts": use_bodyparts,
        "anterior_bodyparts": ["snout"],
        "posterior_bodyparts": ["tailbase"],
        "latent_dim": 3,
        "trans_hypparams": {"num_states": 10},
        **TINY,
        "kappa_search": {"enabled": False},  # fixed tiny kappas: plumbing, not science
    }
    path = workdir / "config" / "extra_points.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("extra_points")
    config = write_sessions(workdir, SESSIONS, USED)
    targets = [f"results/syllables/{s}.csv" for s in SESSIONS] + ["results/qa/summary.tsv"]
    snakemake(workdir, "--resources", "gpu=1", "--", *targets, config=config)
    return workdir


@pytest.mark.workflow
def test_sessions_with_different_extra_points_train_one_model(mixed_run):
    for session in SESSIONS:
        table = pd.read_csv(mixed_run / "results" / "syllables" / f"{session}.csv")
        assert len(table) == FRAMES
        assert table["syllable"].notna().all()
        assert table["frame"].tolist() == list(range(FRAMES))
        assert table["time_s"].to_numpy() == pytest.approx(np.arange(FRAMES) / 30)  # the table's fps
        # the session file keeps every tracked point; the cleaned one, the modelled points only
        with h5py.File(mixed_run / "results" / "keypoints" / f"{session}.h5") as f:
            assert [b.decode() for b in f["bodyparts"][()]] == USED + SESSIONS[session][0]
        with h5py.File(mixed_run / "results" / "sessions" / session / "clean.h5") as f:
            assert [b.decode() for b in f["bodyparts"][()]] == USED


@pytest.mark.workflow
def test_dropped_points_are_recorded_and_left_out_of_qa(mixed_run):
    qa = pd.read_csv(mixed_run / "results" / "qa" / "summary.tsv", sep="\t", keep_default_na=False)
    qa = qa.set_index("session")
    for session, (extra, _, train) in SESSIONS.items():
        assert qa.loc[session, "dropped_bodyparts"] == ", ".join(extra)
        assert qa.loc[session, "bodyparts"] == len(USED)
        assert bool(qa.loc[session, "used_for_training"]) is train
    # s1's LED is NaN in every frame: counted, it would make a quarter of s1's points missing
    # (and the load would have refused it as a never-tracked bodypart); the modelled points
    # of this file have no NaN at all.
    assert qa.loc["s1", "nan_fraction"] == 0.0
    assert qa.loc["s1", "nan_fraction"] == qa.loc["s3", "nan_fraction"]
    # the LED did not move the medoid: s1 and s3 are the same stretch, with the same outliers
    assert qa.loc["s1", "outlier_fraction"] == qa.loc["s3", "outlier_fraction"]
    with h5py.File(mixed_run / "results" / "sessions" / "s1" / "clean.h5") as a, h5py.File(
        mixed_run / "results" / "sessions" / "s3" / "clean.h5"
    ) as b:
        np.testing.assert_array_equal(a["coordinates"][()], b["coordinates"][()])


@pytest.mark.workflow
def test_a_session_lacking_a_used_bodypart_is_refused(tmp_path):
    config = write_sessions(tmp_path, {"ok": (["LED"], 0, True), "earless": ([], 0, True)}, USED)
    earless = tmp_path / "pose" / "earless.h5"
    df = pd.read_hdf(earless)
    df.drop(columns="leftear", level="bodyparts").to_hdf(earless, key="df_with_missing", mode="w")
    proc = snakemake(tmp_path, "--", "results/keypoints/earless.h5", config=config, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert f"ERROR: {earless} (session 'earless'): missing required bodyparts leftear; available: snout, rightear, tailbase" in text
    assert not (tmp_path / "results" / "keypoints" / "earless.h5").exists()


# ----------------------------------------------------------------- the same rules, in-process


def session(name: str, bodyparts: list[str], frames: int = 200, seed: int = 0) -> SessionKeypoints:
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(frames, len(bodyparts), 2)).cumsum(axis=0)
    return SessionKeypoints(
        session=name, coordinates=coords, confidences=np.ones((frames, len(bodyparts))),
        bodyparts=list(bodyparts), source_path=f"/data/{name}.h5", source_sha256="0" * 64,
        format="deeplabcut", fps=30.0,
    )


def test_select_bodyparts_keeps_the_used_ones_in_session_order():
    kp = session("a", ["LED", "nose", "implant", "tail"])
    kept, dropped = select_bodyparts(kp, ["tail", "nose"])
    assert kept.bodyparts == ["nose", "tail"] and dropped == ["LED", "implant"]
    np.testing.assert_array_equal(kept.coordinates, kp.coordinates[:, [1, 3]])
    assert select_bodyparts(kp, None) == (kp, [])
    with pytest.raises(InputError, match=r"^/data/a\.h5 \(session 'a'\): lacks bodyparts \['spine'\] named in config key 'use_bodyparts'"):
        select_bodyparts(kp, ["nose", "spine"])


def test_qa_measures_count_the_modelled_points_only(tmp_path):
    kp = session("a", ["nose", "neck", "tail", "LED"])
    kp.coordinates[:100, 3] = np.nan  # an LED that was off half the session
    result = outlier_qa(kp, 6.0, use_bodyparts=["nose", "neck", "tail"])
    assert result.row["nan_fraction"] == 0.0 and result.row["bodyparts"] == 3
    assert result.row["dropped_bodyparts"] == "LED"
    assert result.clean.bodyparts == ["nose", "neck", "tail"]
    assert result.outlier_mask.shape == (200, 3)
    everything = outlier_qa(kp, 6.0)
    assert everything.row["nan_fraction"] == pytest.approx(0.125) and everything.row["dropped_bodyparts"] == ""


def test_training_sessions_need_only_the_used_bodyparts(tmp_path):
    paths = {}
    for name, bodyparts in {"a": ["nose", "tail", "LED"], "b": ["implant", "tail", "nose"]}.items():
        paths[name] = str(tmp_path / f"{name}.h5")
        write_session(paths[name], session(name, bodyparts))
    coordinates, _, bodyparts, _ = load_training_sessions(paths, use_bodyparts=["nose", "tail"])
    assert bodyparts == ["nose", "tail"]
    assert {k: v.shape for k, v in coordinates.items()} == {"a": (200, 2, 2), "b": (200, 2, 2)}
    # the config's bodypart order, restricted to the used ones
    _, _, bodyparts, _ = load_training_sessions(paths, ["tail", "LED", "nose"], ["nose", "tail"])
    assert bodyparts == ["tail", "nose"]
    with pytest.raises(InputError, match=r"/data/b\.h5 \(session 'b'\): lacks bodyparts \['LED'\]"):
        load_training_sessions(paths, use_bodyparts=["nose", "LED"])
    with pytest.raises(InputError, match=r"/data/b\.h5: bodyparts differ from /data/a\.h5: missing \['LED'\], extra \['implant'\]"):
        load_training_sessions(paths)  # without use_bodyparts, all must match (as before)
