"""Per-session results files (keypoint-moseq's results.h5 layout and CSV columns)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd


def read_session_results(results_h5, session: str) -> dict[str, np.ndarray]:
    """One session's arrays from a keypoint-moseq results.h5, or from ``<session>.h5`` in
    an apply batch's folder (rule apply_batch)."""
    if Path(results_h5).is_dir():
        results_h5 = Path(results_h5) / f"{session}.h5"
    with h5py.File(results_h5, "r") as f:
        if session not in f:
            raise KeyError(f"{results_h5} holds no results for session {session!r}")
        return {name: f[session][name][()] for name in f[session]}


def session_table(
    results: dict[str, np.ndarray], session: str = "session", fps: float | None = None
) -> pd.DataFrame:
    """The CSV keypoint-moseq's save_results_as_csv writes, with a time axis in front.

    Parameters
    ----------
    results : dict
        One session's arrays from a keypoint-moseq results.h5.
    session : str, default "session"
        Session name (keypoint-moseq's file name).
    fps : float, optional
        The session's frame rate; None leaves ``time_s`` empty (NaN).

    Returns
    -------
    pandas.DataFrame
        ``frame`` (0-based row of the pose file) and ``time_s`` (``frame / fps``), then
        keypoint-moseq's own columns in its order (syllable, centroid, heading, latent state).
    """
    import keypoint_moseq as kpms

    with tempfile.TemporaryDirectory(prefix="kpms_flow_csv_") as scratch:
        kpms.save_results_as_csv({session: results}, save_dir=scratch)
        table = pd.read_csv(Path(scratch, f"{session}.csv"))
    frame = np.arange(len(table))
    table.insert(0, "frame", frame)
    table.insert(1, "time_s", frame / float(fps) if fps else np.full(len(table), np.nan))
    return table


def syllable_runs(labels: np.ndarray) -> np.ndarray:
    """Lengths of runs of equal consecutive labels."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, dtype=int)
    change = np.flatnonzero(np.diff(labels) != 0) + 1
    edges = np.concatenate([[0], change, [labels.size]])
    return np.diff(edges)
