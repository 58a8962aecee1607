"""NWB export of one session (kpms_flow.nwb_export) on tiny inputs and one real NWB file,
validated with pynwb and the NWB Inspector, and read back."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import shared_pose
from kpms_flow.keypoints import InputError
from kpms_flow.nwb_export import (
    NAMES,
    SessionSyllables,
    export_session_nwb,
    read_bouts,
    skeleton_edges,
    syllable_bouts,
)

PROVENANCE = {
    "model": {"path": "results/model/checkpoint.h5", "sha256": "ab" * 32},
    "kappa": {"full_model": {"kappa": 1000.0}},
    "seeds": {"seed": 0},
    "packages": {"keypoint-moseq": "0.8.1"},
    "kpms_flow": {"version": "0.1.0", "commit": "unknown", "dirty": "unknown"},
}
SYLLABLES = np.array([0, 0, 0, 2, 2, 1, 1, 1, 1, 0])


def session(n_frames=10, bodyparts=("nose", "neck", "tail"), syllable=SYLLABLES):
    rng = np.random.default_rng(0)
    coordinates = rng.normal(size=(n_frames, len(bodyparts), 2))
    coordinates[3, 1] = np.nan  # a missing point stays missing
    return SessionSyllables(
        session="s1",
        syllable=np.asarray(syllable),
        centroid=rng.normal(size=(n_frames, 2)),
        heading=rng.uniform(-np.pi, np.pi, n_frames),
        coordinates=coordinates,
        confidences=rng.uniform(size=(n_frames, len(bodyparts))),
        bodyparts=list(bodyparts),
        fps=10.0,
    )


def inspector_problems(path, at_least="BEST_PRACTICE_VIOLATION"):
    from nwbinspector import Importance, inspect_nwbfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            f"{m.importance.name} {m.check_function_name} {m.object_name}: {m.message}"
            for m in inspect_nwbfile(nwbfile_path=str(path))
            if m.importance.value >= Importance[at_least].value
        ]


def pynwb_errors(path):
    import pynwb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pynwb.validate(path=str(path))


def read_module(path):
    from pynwb import NWBHDF5IO

    import ndx_ethogram  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        io = NWBHDF5IO(str(path), mode="r", load_namespaces=True)
        return io, io.read()


def test_bouts_are_runs_with_times_in_seconds_and_names():
    bouts = syllable_bouts(SYLLABLES, fps=10.0, start_time=5.0, names={2: "rear"})
    assert bouts["syllable"].tolist() == [0, 2, 1, 0]
    assert bouts["name"].tolist() == ["0", "rear", "1", "0"]
    assert bouts["start_frame"].tolist() == [0, 3, 5, 9]
    assert bouts["stop_frame"].tolist() == [3, 5, 9, 10]
    assert bouts["start_time"].tolist() == pytest.approx([5.0, 5.3, 5.5, 5.9])
    assert bouts["stop_time"].tolist() == pytest.approx([5.3, 5.5, 5.9, 6.0])


def test_skeleton_edges_keep_only_modelled_bodyparts():
    edges = skeleton_edges(["nose", "neck", "tail"], [["nose", "neck"], ["neck", "ear"], ["neck", "tail"]])
    assert edges.tolist() == [[0, 1], [1, 2]]
    assert skeleton_edges(["a"], None).shape == (0, 2)


def test_new_file_validates_and_reads_back(tmp_path):
    source = tmp_path / "s1DLC.h5"
    source.write_bytes(b"pose")
    out = tmp_path / "nwb" / "s1.nwb"
    data = session()
    metadata = {"species": "Mus musculus", "sex": "M", "age": "P90D", "experimenter": ["Doe, Jane"],
                "institution": "Lab", "experiment_description": "open field"}
    export_session_nwb(
        out, data, PROVENANCE, source, "deeplabcut", animal="mouse1", metadata=metadata,
        skeleton=[["nose", "neck"], ["neck", "tail"]],
    )
    assert pynwb_errors(out) == []
    assert inspector_problems(out) == []
    bouts = read_bouts(out)
    assert bouts["label"].tolist() == ["0", "2", "1", "0"]
    assert bouts["syllable"].tolist() == [0, 2, 1, 0]
    assert bouts["stop_time"].tolist() == pytest.approx([0.3, 0.5, 0.9, 1.0])
    io, nwb = read_module(out)
    with io:
        module = nwb.processing["behavior"]
        assert (nwb.subject.subject_id, nwb.subject.species, nwb.subject.age) == ("mouse1", "Mus musculus", "P90D")
        assert json.loads(module[NAMES["bouts"]].parameters) == PROVENANCE
        assert module[NAMES["bouts"]].labeling_method == "automated"
        assert module[NAMES["bouts"]].ethogram.to_dataframe()["behavior"].tolist() == ["0", "1", "2"]
        assert np.array_equal(module[NAMES["syllable"]].data[:], SYLLABLES)
        np.testing.assert_allclose(module[NAMES["centroid"]]["centroid"].data[:], data.centroid)
        np.testing.assert_allclose(module[NAMES["heading"]]["heading"].data[:], data.heading)
        pose = module[NAMES["pose"]]
        assert list(pose.skeleton.nodes[:]) == ["nose", "neck", "tail"]
        assert pose.skeleton.edges[:].tolist() == [[0, 1], [1, 2]]
        np.testing.assert_allclose(pose.pose_estimation_series["neck"].data[:], data.coordinates[:, 1], equal_nan=True)
        assert pose.pose_estimation_series["neck"].rate == 10.0


def test_names_and_curated_labels(tmp_path):
    source = tmp_path / "s1.h5"
    source.write_bytes(b"pose")
    out = tmp_path / "s1.nwb"
    export_session_nwb(
        out, session(), PROVENANCE, source, "sleap",
        names={0: "walk", 1: "groom"}, descriptions={1: "face grooming"},
        labeling_method="curated",
    )
    assert read_bouts(out)["label"].tolist() == ["walk", "2", "groom", "walk"]
    # without the subject's metadata (config section nwb), the inspector names what DANDI lacks
    assert sorted(p.split(" ")[1] for p in inspector_problems(out)) == [
        "check_subject_age", "check_subject_sex", "check_subject_species_exists",
    ]
    io, nwb = read_module(out)
    with io:
        ethogram = nwb.processing["behavior"][NAMES["ethogram"]].to_dataframe()
        assert ethogram["behavior"].tolist() == ["walk", "groom", "2"]
        assert ethogram["definition"].tolist()[1] == "face grooming"
        assert ethogram["native_code"].tolist() == [0, 1, 2]


def test_real_nwb_source_is_copied_with_its_content_and_never_modified(tmp_path):
    from kpms_flow.formats import load_session

    source = shared_pose("dlc_openfield_mouse", "m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.nwb")
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    kp = load_session(str(source), "nwb", "m3v1", fps=30)
    n = kp.n_frames
    syllable = np.repeat(np.arange(n // 100 + 1), 100)[:n]
    data = SessionSyllables(
        session="m3v1", syllable=syllable, centroid=np.nanmean(kp.coordinates, axis=1),
        heading=np.zeros(n), coordinates=kp.coordinates, confidences=kp.confidences,
        bodyparts=kp.bodyparts, fps=30.0,
    )
    out = tmp_path / "m3v1.nwb"
    export_session_nwb(out, data, PROVENANCE, source, "nwb")
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
    assert pynwb_errors(out) == []
    # the copy adds no inspector finding the source did not already have
    assert set(inspector_problems(out)) <= set(inspector_problems(source))
    bouts = read_bouts(out)
    assert len(bouts) == n // 100 + (n % 100 > 0)
    assert bouts["stop_time"].iloc[-1] == pytest.approx(n / 30.0)
    io, nwb = read_module(out)
    with io:
        module = nwb.processing["behavior"]
        original = module["PoseEstimation"]  # the source's own content, kept
        assert sorted(original.pose_estimation_series) == sorted(
            f"ind1_{b}" for b in ["leftear", "rightear", "snout", "tailbase"]
        )
        assert module[NAMES["bouts"]].source_pose is original
        assert nwb.identifier == "DLC_resnet50_openfieldAug20shuffle1"
    # exporting the export again is refused, naming the objects already there
    with pytest.raises(InputError, match="already holds"):
        export_session_nwb(tmp_path / "again.nwb", data, PROVENANCE, out, "nwb")
    assert not (tmp_path / "again.nwb").exists()


def test_source_with_a_current_ndx_pose_skeletons_container(tmp_path):
    from test_formats import write_nwb

    source = tmp_path / "src.nwb"
    write_nwb(source, n=10, rate=10.0)
    out = tmp_path / "out.nwb"
    export_session_nwb(out, session(bodyparts=("nose", "tail")), PROVENANCE, source, "nwb")
    assert pynwb_errors(out) == []
    io, nwb = read_module(out)
    with io:
        skeletons = nwb.processing["behavior"]["Skeletons"].skeletons
        assert sorted(skeletons) == sorted(["mouse", NAMES["skeleton"]])
    assert read_bouts(out)["syllable"].tolist() == [0, 2, 1, 0]


def test_3d_keypoints_and_centroid(tmp_path):
    source = tmp_path / "s1.mat"
    source.write_bytes(b"pose")
    data = session()
    rng = np.random.default_rng(1)
    data.coordinates = rng.normal(size=(10, 3, 3))
    data.centroid = rng.normal(size=(10, 3))
    out = tmp_path / "s1.nwb"
    export_session_nwb(out, data, PROVENANCE, source, "dannce")
    assert pynwb_errors(out) == []
    io, nwb = read_module(out)
    with io:
        module = nwb.processing["behavior"]
        assert module[NAMES["pose"]].pose_estimation_series["tail"].data.shape == (10, 3)
        np.testing.assert_allclose(module[NAMES["centroid"]]["centroid"].data[:], data.centroid)


FRESH_EXPORT = """
import sys
import numpy as np
from kpms_flow.formats import load_session
from kpms_flow.nwb_export import SessionSyllables, export_session_nwb
source, out = sys.argv[1], sys.argv[2]
kp = load_session(source, "nwb", "m3v1", fps=30)
n = kp.n_frames
data = SessionSyllables(
    session="m3v1", syllable=np.repeat(np.arange(n // 100 + 1), 100)[:n],
    centroid=np.nanmean(kp.coordinates, axis=1), heading=np.zeros(n), coordinates=kp.coordinates,
    confidences=kp.confidences, bodyparts=kp.bodyparts, fps=30.0,
)
export_session_nwb(out, data, {"model": {"sha256": "ab" * 32}}, source, "nwb")
"""


def test_an_nwb_source_exported_in_a_fresh_process_keeps_the_ethogram_fields(tmp_path):
    # As an export_session job does: nothing has imported the NWB extensions before the export.
    source = shared_pose("dlc_openfield_mouse", "m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.nwb")
    out = tmp_path / "m3v1.nwb"
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_EXPORT, str(source), str(out)], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "scripts")),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    io, nwb = read_module(out)
    with io:
        module = nwb.processing["behavior"]
        assert module[NAMES["bouts"]].source_pose is module["PoseEstimation"]
