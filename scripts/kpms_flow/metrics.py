"""Agreement between fitted syllables and known states, and syllable duration statistics."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _valid_mask(labels: np.ndarray) -> np.ndarray:
    """Frames with a real label: not NaN and not negative (-1 marks missing)."""
    if np.issubdtype(labels.dtype, np.floating):
        ok = np.isfinite(labels)
        ok[ok] = labels[ok] >= 0
        return ok
    return labels >= 0


def _as_labels(labels) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    return arr


def nmi(labels_true, labels_pred) -> float:
    """Normalized mutual information between two per-frame labellings.

    Parameters
    ----------
    labels_true, labels_pred : array_like of shape (n_frames,)
        Integer labels. Frames where either label is negative or NaN are ignored.

    Returns
    -------
    float
        ``sklearn.metrics.normalized_mutual_info_score`` (arithmetic normalization) on the
        frames labelled in both; NaN when no frame is.
    """
    from sklearn.metrics import normalized_mutual_info_score

    a, b = _as_labels(labels_true), _as_labels(labels_pred)
    if a.shape != b.shape:
        raise ValueError(f"label arrays differ in length: {a.shape[0]} vs {b.shape[0]}")
    ok = _valid_mask(a) & _valid_mask(b)
    if not ok.any():
        return float("nan")
    return float(normalized_mutual_info_score(a[ok].astype(np.int64), b[ok].astype(np.int64)))


def shuffled_nmi(labels_true, labels_pred, seed: int = 0) -> float:
    """NMI after circularly shifting ``labels_pred`` by a random offset (chance baseline).

    A circular shift keeps the bout structure and label frequencies of the prediction but
    breaks its alignment with the truth, so it is a fairer baseline than permuting frames.

    Parameters
    ----------
    labels_true, labels_pred : array_like of shape (n_frames,)
        As for :func:`nmi`.
    seed : int
        Seed of the offset.

    Returns
    -------
    float
        NMI of the shifted labelling.
    """
    a, b = _as_labels(labels_true), _as_labels(labels_pred)
    if a.shape != b.shape:
        raise ValueError(f"label arrays differ in length: {a.shape[0]} vs {b.shape[0]}")
    n = len(b)
    rng = np.random.default_rng(seed)
    # Offset from the middle half: a shift near 0 or n would leave the alignment intact.
    lo, hi = n // 4, max(n // 4 + 1, (3 * n) // 4)
    offset = int(rng.integers(lo, hi)) if n > 1 else 0
    return nmi(a, np.roll(b, offset))


def run_lengths(labels) -> np.ndarray:
    """Lengths of runs of equal consecutive labels; missing frames (<0, NaN) end a run
    and are not counted as runs themselves."""
    arr = _as_labels(labels)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    ok = _valid_mask(arr)
    # Replace missing frames by a sentinel so that they split runs, then drop their runs.
    filled = np.where(ok, arr, np.nan) if np.issubdtype(arr.dtype, np.floating) else arr
    change = np.ones(arr.size, dtype=bool)
    change[1:] = (filled[1:] != filled[:-1]) | (ok[1:] != ok[:-1])
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, arr.size))
    return lengths[ok[starts]].astype(np.int64)


def median_duration_frames(syllables_per_session) -> float:
    """Median bout length (frames) of syllables, pooled over sessions.

    Parameters
    ----------
    syllables_per_session : dict[str, numpy.ndarray]
        Per-frame syllable labels of each session. Runs never span two sessions;
        the (truncated) first and last bout of each session are included.

    Returns
    -------
    float
        Median of all run lengths; NaN if there are none.
    """
    values = (
        syllables_per_session.values()
        if isinstance(syllables_per_session, Mapping)
        else syllables_per_session
    )
    runs = [run_lengths(v) for v in values]
    runs = np.concatenate(runs) if runs else np.zeros(0)
    return float(np.median(runs)) if runs.size else float("nan")
