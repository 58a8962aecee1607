"""3D keypoints (DANNCE) through the whole workflow with tiny iteration counts (real Snakemake,
real keypoint-moseq): the same rules as 2D data, plus a third (z) centroid column."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, TINY, shared_pose, snakemake

pytestmark = pytest.mark.workflow

DANNCE = ("dannce_3d", "save_data_AVG_torch_nearest.mat")
# Two training sessions and one held-out session, all from the one real DANNCE file (1000
# frames, 22 unnamed keypoints bodypart0..21): a second session may point at the same file.
SESSIONS = {"rat_a": True, "rat_b": True, "rat_held": False}


def write_3d_config(workdir: Path, mat: Path) -> Path:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        [
            {"session": s, "path": str(mat), "format": "dannce", "animal": "", "fps": 30,
             "group": "A", "train": train, "video": ""}
            for s, train in SESSIONS.items()
        ]
    )
    table.to_csv(workdir / "config" / "sessions.tsv", sep="\t", index=False)
    config = {
        "sessions": "config/sessions.tsv",
        # bodypart0 sits at the head end and bodypart5 at the tail end of the DANNCE rat.
        "anterior_bodyparts": ["bodypart0"],
        "posterior_bodyparts": ["bodypart5"],
        "latent_dim": 4,
        "min_frames": 100,
        "qa": {"min_frames": 100},
        "trans_hypparams": {"num_states": 10},
        **TINY,
    }
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    if "kappa_search" in schema["properties"]:
        config["kappa_search"] = {"enabled": False}  # fixed tiny kappas: plumbing, not science
    path = workdir / "config" / "test_3d.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def dannce_run(tmp_path_factory):
    mat = shared_pose(*DANNCE)
    workdir = tmp_path_factory.mktemp("dannce3d")
    config = write_3d_config(workdir, mat)
    # The whole workflow on 3D data but for the rules that never see a coordinate (report
    # tables, fit progress plots, syllable frequency and group figures, the provenance
    # record): covered by the 2D runs.
    omitted = ["table_view", "plot_progress", "plot_syllables", "group_statistics", "provenance"]
    snakemake(workdir, "--resources", "gpu=1", "--omit-from", *omitted, config=config)
    return workdir


def test_3d_sessions_load_as_3d(dannce_run):
    for session in SESSIONS:
        with h5py.File(dannce_run / "results" / "keypoints" / f"{session}.h5") as f:
            assert f["coordinates"].shape == (1000, 22, 3)
            assert f.attrs["format"] == "dannce"
            assert int(f.attrs["sample_stride"]) == 10  # sampleID 1, 11, 21, ...


def test_3d_per_session_csvs_have_z_centroid(dannce_run):
    for session in SESSIONS:
        table = pd.read_csv(dannce_run / "results" / "syllables" / f"{session}.csv")
        assert len(table) == 1000
        assert list(table.columns[:7]) == [
            "frame", "time_s", "syllable", "centroid x", "centroid y", "centroid z", "heading"
        ]
        # the table's 30 fps is the rate of the prediction rows (every 10th video frame)
        assert table["time_s"].to_numpy() == pytest.approx(np.arange(1000) / 30)
        assert table["syllable"].min() >= 0
        assert np.isfinite(table[["centroid x", "centroid y", "centroid z"]].to_numpy()).all()
        latent = [c for c in table.columns if c.startswith("latent_state")]
        assert len(latent) == 4


def test_3d_qa_and_summary(dannce_run):
    qa = pd.read_csv(dannce_run / "results" / "qa" / "summary.tsv", sep="\t", keep_default_na=False)
    assert qa["session"].tolist() == list(SESSIONS)
    assert qa["used_for_training"].tolist() == list(SESSIONS.values())
    assert (dannce_run / "results" / "summary.txt").exists()
