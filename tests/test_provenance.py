"""The provenance record (kpms_flow.provenance) on tiny files, without Snakemake."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata

import numpy as np
import pandas as pd
import pytest

from kpms_flow.keypoints import SessionKeypoints, write_session
from kpms_flow.provenance import (
    chosen_kappas,
    find_seeds,
    git_state,
    model_provenance,
    package_versions,
    project_version,
    provenance_record,
    write_provenance,
)


def keypoints_file(path, session, source, sha):
    kp = SessionKeypoints(
        session=session,
        coordinates=np.zeros((3, 2, 2)),
        confidences=np.ones((3, 2)),
        bodyparts=["nose", "tail"],
        source_path=source,
        source_sha256=sha,
        format="deeplabcut",
    )
    write_session(path, kp)
    return path


@pytest.fixture
def run_files(tmp_path):
    model = tmp_path / "checkpoint.h5"
    model.write_bytes(b"model bytes")
    files = [
        keypoints_file(tmp_path / f"{s}.h5", s, f"pose/{s}.h5", f"{i}" * 64)
        for i, s in enumerate(["a", "b", "c"], start=1)
    ]
    chosen = tmp_path / "chosen.tsv"
    pd.DataFrame(
        [{"stage": "arhmm", "round": 2, "probe": 1, "kappa": 1e4, "status": "converged"}]
    ).to_csv(chosen, sep="\t", index=False)
    metrics = tmp_path / "metrics.tsv"
    pd.DataFrame(
        [{"stage": "full_model", "kappa": 500.0, "median_duration_frames": 9.0, "syllables": 7}]
    ).to_csv(metrics, sep="\t", index=False)
    workflow = tmp_path / "workflow"
    workflow.mkdir()
    (workflow / "pyproject.toml").write_text('[project]\nname = "kpms-flow"\nversion = "9.8.7"\n')
    return model, files, chosen, metrics, workflow


def test_record_names_versions_config_seeds_sessions_kappas_and_model(run_files, tmp_path):
    model, files, chosen, metrics, workflow = run_files
    config = {"seed": 3, "kappa_search": {"enabled": True, "seed_offset": 5}, "fps": 30}
    model_record = model_provenance(
        model, chosen_kappas([chosen], [metrics]), find_seeds(config), workflow
    )
    record = provenance_record(config, model_record, files, ["a", "b"], ["a"])
    assert record["model"]["sha256"] == hashlib.sha256(b"model bytes").hexdigest()
    assert record["packages"]["keypoint-moseq"] == metadata.version("keypoint-moseq")
    assert set(record["packages"]) >= {"keypoint-moseq", "jax-moseq", "jax", "jaxlib", "snakemake", "numpy"}
    assert record["kpms_flow"]["version"] == "9.8.7"
    # tmp_path is no git checkout: recorded as unknown, not an error
    assert record["kpms_flow"]["commit"] == "unknown"
    assert record["seeds"] == {"seed": 3, "kappa_search.seed_offset": 5}
    assert record["config"] == config
    # b is a train session that QA left out; c is applied
    assert record["sessions"]["train"] == ["a"]
    assert record["sessions"]["excluded"] == ["b"]
    assert record["sessions"]["applied"] == ["c"]
    assert record["sessions"]["sources"][2] == {
        "session": "c", "role": "applied", "source_path": "pose/c.h5",
        "format": "deeplabcut", "source_sha256": "3" * 64,
    }
    assert record["kappa"]["arhmm"]["kappa"] == 1e4
    assert record["kappa"]["arhmm"]["source"] == "kappa search"
    assert record["kappa"]["full_model"]["final_fit_kappa"] == 500.0
    out = tmp_path / "provenance.json"
    write_provenance(out, record)
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))


def test_configured_kappas_when_the_search_is_off():
    kappas = chosen_kappas(configured={"arhmm": 1e4, "full_model": 1e3})
    assert kappas == {
        "arhmm": {"kappa": 1e4, "source": "config"},
        "full_model": {"kappa": 1e3, "source": "config"},
    }


def test_git_commit_of_a_checkout_and_its_dirty_flag(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    (repo / "untracked_results.txt").write_text("x")  # results are not code changes
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "f.txt").write_text("2")
    assert git_state(repo) == {"commit": head, "dirty": True}


def test_missing_pyproject_and_package_are_unknown_not_errors(tmp_path):
    assert project_version(tmp_path) == "unknown"
    assert package_versions(["no-such-package-kpms-flow"]) == {"no-such-package-kpms-flow": "not installed"}
    assert find_seeds({"a": [1, 2], "b": {"c": 1}}) == {}
