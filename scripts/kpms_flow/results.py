"""Per-session results files (keypoint-moseq's results.h5 layout and CSV columns)."""

from __future__ import annotations

import io
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


def session_table(results: dict[str, np.ndarray], fps: float | None = None) -> pd.DataFrame:
    """The CSV keypoint-moseq's save_results_as_csv writes, with a time axis in front.

    Parameters
    ----------
    results : dict
        One session's arrays from a keypoint-moseq results.h5.
    fps : float, optional
        The session's frame rate; None leaves ``time_s`` empty (NaN).

    Returns
    -------
    pandas.DataFrame
        ``frame`` (0-based row of the pose file) and ``time_s`` (``frame / fps``), then
        keypoint-moseq's own columns in its order (syllable, centroid, heading, latent state).
    """
    # Read back from the text, as from keypoint-moseq's file: the CSV holds the parsed values.
    table = pd.read_csv(io.StringIO(keypoint_moseq_csv(results)))
    frame = np.arange(len(table))
    table.insert(0, "frame", frame)
    table.insert(1, "time_s", frame / float(fps) if fps else np.full(len(table), np.nan))
    return table


def keypoint_moseq_csv(results: dict[str, np.ndarray]) -> str:
    """The text keypoint-moseq 0.8.1's ``save_results_as_csv`` writes for one session.

    The same steps as that function (its columns, in its order; floats rounded to 4
    decimals), without importing keypoint-moseq: the import costs 6 to 8 s of CPU, and
    export_session runs once per session (benchmarks/README.md, rule start-up).
    tests/test_results.py compares the two byte for byte, so a keypoint-moseq that writes
    its CSV differently fails there.
    """
    columns, blocks = [], []
    if "syllable" in results:
        columns.append(["syllable"])
        blocks.append(results["syllable"].reshape(-1, 1))
    if "centroid" in results:
        columns.append(["centroid x", "centroid y", "centroid z"][: results["centroid"].shape[1]])
        blocks.append(results["centroid"])
    if "heading" in results:
        columns.append(["heading"])
        blocks.append(results["heading"].reshape(-1, 1))
    if "latent_state" in results:
        columns.append([f"latent_state {i}" for i in range(results["latent_state"].shape[1])])
        blocks.append(results["latent_state"])
    frame = pd.concat(
        [pd.DataFrame(block, columns=names) for block, names in zip(blocks, columns)], axis=1
    )
    for column in frame.select_dtypes(include=[np.floating]).columns:
        frame[column] = frame[column].astype(float).round(4)
    return frame.to_csv(index=False)


def syllable_runs(labels: np.ndarray) -> np.ndarray:
    """Lengths of runs of equal consecutive labels."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, dtype=int)
    change = np.flatnonzero(np.diff(labels) != 0) + 1
    edges = np.concatenate([[0], change, [labels.size]])
    return np.diff(edges)
