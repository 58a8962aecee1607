"""What produced a run's results: versions, effective config, seeds, sessions, kappas, model.

``results/provenance/model.json`` (rule ``model_provenance``, :func:`model_provenance`)
describes the model alone: the NWB export embeds it, and a new session does not change it.
``results/provenance.json`` (rule ``provenance``, :func:`provenance_record`) adds the sessions
and the whole effective config.
"""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path

import h5py
import pandas as pd

from .atomic import write_text
from .keypoints import sha256_of_file

# The packages whose versions decide the syllables (keypoint-moseq's random streams depend
# on the exact jax/jaxlib versions) or the workflow around them.
PACKAGES = ["keypoint-moseq", "jax-moseq", "jax", "jaxlib", "snakemake", "numpy"]
UNKNOWN = "unknown"


def package_versions(packages=PACKAGES) -> dict[str, str]:
    """Installed version of each package ("not installed" where absent)."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def project_version(workflow_dir) -> str:
    """kpms-flow's version from the workflow's ``pyproject.toml``, else "unknown"."""
    import tomllib

    try:
        with open(Path(workflow_dir) / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return UNKNOWN


def git_state(workflow_dir) -> dict[str, object]:
    """The workflow checkout's commit and whether it has uncommitted changes.

    Returns ``{"commit": "unknown", "dirty": "unknown"}`` where the folder is no git
    checkout or git is missing: a provenance record must never fail a run.
    """

    def git(*args) -> str:
        return subprocess.run(
            ["git", "-C", str(workflow_dir), *args],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # Tracked files only: results/ and a venv in the checkout are not code changes.
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": UNKNOWN, "dirty": UNKNOWN}
    return {"commit": commit, "dirty": dirty}


def find_seeds(config, path: str = "") -> dict[str, object]:
    """Every config value whose key names a seed, by dotted key (``seed``, ``x.seed``)."""
    seeds = {}
    if isinstance(config, dict):
        for key, value in config.items():
            dotted = f"{path}.{key}" if path else str(key)
            if "seed" in str(key).lower() and not isinstance(value, (dict, list)):
                seeds[dotted] = value
            else:
                seeds.update(find_seeds(value, dotted))
    return seeds


def session_sources(keypoint_files, train_sessions, used_for_training) -> list[dict]:
    """Each session's source file, its format and sha256, and how the session was used.

    Parameters
    ----------
    keypoint_files : iterable of path
        ``results/keypoints/<session>.h5`` files (their attributes hold the source's
        path and hash, taken when the source was read).
    train_sessions : iterable of str
        Sessions marked ``train`` in the sessions table.
    used_for_training : iterable of str
        Sessions that trained the model (train sessions that passed QA).

    Returns
    -------
    list of dict
        One per session: ``session``, ``role`` ("train", "applied", or "excluded" for a
        train session QA left out), ``source_path``, ``format``, ``source_sha256``.
    """
    train, used = set(train_sessions), set(used_for_training)
    rows = []
    for path in keypoint_files:
        with h5py.File(path, "r") as f:
            attrs = {k: str(f.attrs.get(k, "")) for k in ("session", "source_path", "format", "source_sha256")}
        session = attrs["session"] or Path(path).stem
        role = "train" if session in used else ("excluded" if session in train else "applied")
        rows.append({"session": session, "role": role, **{k: v for k, v in attrs.items() if k != "session"}})
    return rows


def chosen_kappas(kappa_tables=(), fit_tables=(), configured=None) -> dict[str, dict]:
    """Per stage: the kappa of the final fit, and how it was chosen.

    Parameters
    ----------
    kappa_tables : iterable of path
        ``results/search/<stage>/chosen.tsv`` (kappa search on).
    fit_tables : iterable of path
        ``results/fits/restart_<r>/<stage>/metrics.tsv`` (the delivered restart's final
        fits).
    configured : dict, optional
        stage -> kappa from the config (kappa search off).
    """
    stages: dict[str, dict] = {}
    for stage, kappa in (configured or {}).items():
        stages.setdefault(stage, {})
        stages[stage].update({"kappa": float(kappa), "source": "config"})
    for table in kappa_tables:
        row = pd.read_csv(table, sep="\t").iloc[0]
        stages.setdefault(str(row["stage"]), {}).update(
            {
                "kappa": float(row["kappa"]),
                "source": "kappa search",
                "search_status": str(row["status"]),
                "chosen_round": int(row["round"]),
                "chosen_probe": int(row["probe"]),
            }
        )
    for table in fit_tables:
        row = pd.read_csv(table, sep="\t").iloc[0]
        stages.setdefault(str(row["stage"]), {}).update(
            {
                "final_fit_kappa": float(row["kappa"]),
                "final_fit_median_duration_frames": float(row["median_duration_frames"]),
                "final_fit_syllables": int(row["syllables"]),
            }
        )
    return stages


def model_provenance(checkpoint, kappas: dict, seeds: dict, workflow_dir) -> dict:
    """What identifies the model: its file's sha256, kappas, seeds, software versions."""
    checkpoint = Path(checkpoint)
    return {
        "model": {"path": str(checkpoint), "sha256": sha256_of_file(checkpoint)},
        "kappa": kappas,
        "seeds": seeds,
        "packages": package_versions(),
        "kpms_flow": {"version": project_version(workflow_dir), **git_state(workflow_dir)},
    }


def provenance_record(
    config: dict,
    model_record: dict,
    keypoint_files,
    train_sessions,
    used_for_training,
) -> dict:
    """The whole run's provenance (``results/provenance.json``).

    Parameters
    ----------
    config : dict
        The effective config (schema defaults filled in).
    model_record : dict
        The model's provenance (:func:`model_provenance`, ``results/provenance/model.json``).
    keypoint_files, train_sessions, used_for_training
        See :func:`session_sources`.
    """
    record = dict(model_record)
    sessions = session_sources(keypoint_files, train_sessions, used_for_training)
    record["sessions"] = {
        "train": [s["session"] for s in sessions if s["role"] == "train"],
        "applied": [s["session"] for s in sessions if s["role"] == "applied"],
        "excluded": [s["session"] for s in sessions if s["role"] == "excluded"],
        "sources": sessions,
    }
    record["config"] = json.loads(json.dumps(dict(config), default=str))
    return record


def write_provenance(path, record: dict) -> None:
    """Write ``record`` as indented JSON, atomically."""
    write_text(path, json.dumps(record, indent=2, sort_keys=False, default=str) + "\n")
