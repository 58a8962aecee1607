"""Per-session results files (keypoint-moseq's results.h5 layout and CSV columns)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd


def read_session_results(results_h5, session: str) -> dict[str, np.ndarray]:
    """One session's arrays from a keypoint-moseq results.h5."""
    with h5py.File(results_h5, "r") as f:
        if session not in f:
            raise KeyError(f"{results_h5} holds no results for session {session!r}")
        return {name: f[session][name][()] for name in f[session]}


def session_table(results: dict[str, np.ndarray], session: str = "session") -> pd.DataFrame:
    """The CSV keypoint-moseq's save_results_as_csv writes, as a DataFrame."""
    import keypoint_moseq as kpms

    with tempfile.TemporaryDirectory(prefix="kpms_flow_csv_") as scratch:
        kpms.save_results_as_csv({session: results}, save_dir=scratch)
        return pd.read_csv(Path(scratch, f"{session}.csv"))


def syllable_runs(labels: np.ndarray) -> np.ndarray:
    """Lengths of runs of equal consecutive labels."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, dtype=int)
    change = np.flatnonzero(np.diff(labels) != 0) + 1
    edges = np.concatenate([[0], change, [labels.size]])
    return np.diff(edges)
