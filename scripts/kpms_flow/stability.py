"""How reproducible a model's syllables are across restarts (the model selection's
stability): per-frame labels of a checkpoint, pairwise normalized mutual information, and
each frequent syllable's best match in every other restart."""

from __future__ import annotations

import numpy as np
import pandas as pd

# keypoint-moseq's plots ignore syllables under 0.5 % of frames.
MIN_FREQUENCY = 0.005
# A syllable is reproduced in a restart when its best match covers at least this Jaccard
# overlap of their frames (the figure: 2 of 15 frequent syllables reached 0.5).
REPRODUCED_JACCARD = 0.5


def restart_labels(checkpoint_path) -> np.ndarray:
    """Per-frame syllables of a checkpoint's last snapshot, all sessions concatenated.

    The labels ``extract_results`` would deliver: ``z`` is shorter than the data by the AR
    lag (jax-moseq labels frame ``t`` of a segment with ``z[t - nlags]``), so it is padded
    at the start with its first value, then the overlapping segments are joined back into
    sessions (jax-moseq's ``unbatch``), which drops the padding frames (``mask == 0``).
    Sessions follow in sorted name order, so labels of restarts fitted to the same data
    line up frame by frame.

    Parameters
    ----------
    checkpoint_path : path-like
        A keypoint-moseq checkpoint.

    Returns
    -------
    numpy.ndarray of int32, shape (frames,)
        Fitted state index of every frame (not reindexed by frequency).
    """
    import h5py
    from jax_moseq.utils import unbatch
    from keypoint_moseq.io import load_hdf5

    from .selection import _snapshot_part, last_iteration

    iteration = last_iteration(checkpoint_path)
    z = np.asarray(_snapshot_part(checkpoint_path, iteration, "states/z"))
    with h5py.File(checkpoint_path, "r") as f:
        frames = f[f"model_snapshots/{iteration}/states/x"].shape[1]
    keys, bounds = load_hdf5(str(checkpoint_path), "metadata")
    nlags = frames - z.shape[1]
    padded = np.pad(z, ((0, 0), (nlags, 0)), mode="edge")
    sessions = unbatch(padded, np.asarray(keys), np.asarray(bounds))
    return np.concatenate([sessions[key] for key in sorted(sessions)]).astype(np.int32)


def _check_lengths(labels: dict) -> None:
    lengths = {name: len(v) for name, v in labels.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"restarts' labels cover different numbers of frames {lengths}: they were not "
            "fitted to the same data"
        )


def pairwise_nmi(labels: dict) -> pd.DataFrame:
    """Normalized mutual information between the per-frame labels of every two restarts.

    Parameters
    ----------
    labels : dict of str to numpy.ndarray
        Restart name -> per-frame labels (:func:`restart_labels`), equal lengths.

    Returns
    -------
    pandas.DataFrame
        Columns ``restart_a``, ``restart_b``, ``nmi``: one row per unordered pair, in the
        order of ``labels`` (scikit-learn's ``normalized_mutual_info_score``, arithmetic
        normalization: 1 for the same partition whatever the syllable numbers).
    """
    from sklearn.metrics import normalized_mutual_info_score

    _check_lengths(labels)
    names = list(labels)
    rows = [
        {
            "restart_a": a,
            "restart_b": b,
            "nmi": float(normalized_mutual_info_score(labels[a], labels[b])),
        }
        for k, a in enumerate(names)
        for b in names[k + 1 :]
    ]
    return pd.DataFrame(rows, columns=["restart_a", "restart_b", "nmi"])


def syllable_reproducibility(
    labels: dict, chosen: str, min_frequency: float = MIN_FREQUENCY
) -> pd.DataFrame:
    """How well every frequent syllable of the chosen model reappears in the other restarts.

    For a syllable ``s`` of the chosen model (frames ``A``) and another restart, its best
    match is that restart's syllable ``t`` (frames ``B``) with the highest Jaccard overlap
    ``|A & B| / |A | B|``; ``s`` is reproduced there when that overlap is at least
    ``REPRODUCED_JACCARD`` (0.5), and reproduced overall when that holds in more than half
    of the other restarts.

    Parameters
    ----------
    labels : dict of str to numpy.ndarray
        Restart name -> per-frame labels, equal lengths.
    chosen : str
        The chosen restart (a key of ``labels``).
    min_frequency : float, optional
        Syllables of the chosen model on fewer frames than this fraction are left out.

    Returns
    -------
    pandas.DataFrame
        One row per frequent syllable, most frequent first: ``syllable`` (the chosen
        model's fitted state index), ``frequency`` (fraction of frames), for every other
        restart ``r`` the columns ``match_<r>`` and ``jaccard_<r>``, then
        ``reproduced_in`` (restarts with Jaccard >= 0.5), ``other_restarts`` and
        ``reproduced`` (in more than half of them).
    """
    if chosen not in labels:
        raise ValueError(f"chosen restart {chosen!r} is not among {list(labels)}")
    _check_lengths(labels)
    reference = np.asarray(labels[chosen])
    syllables, counts = np.unique(reference, return_counts=True)
    frequency = counts / reference.size
    keep = frequency >= min_frequency
    order = np.argsort(-frequency[keep], kind="stable")
    syllables, counts, frequency = syllables[keep][order], counts[keep][order], frequency[keep][order]
    table = pd.DataFrame({"syllable": syllables.astype(int), "frequency": frequency})
    others = [name for name in labels if name != chosen]
    reproduced_in = np.zeros(len(syllables), dtype=int)
    for name in others:
        other = np.asarray(labels[name])
        other_ids, other_index = np.unique(other, return_inverse=True)
        other_counts = np.bincount(other_index, minlength=other_ids.size)
        best_match, best = [], []
        for syllable, count in zip(syllables, counts):
            # |A & B| for every syllable B of the other restart at once.
            overlap = np.bincount(other_index[reference == syllable], minlength=other_ids.size)
            jaccard = overlap / (count + other_counts - overlap)
            k = int(np.argmax(jaccard))
            best_match.append(int(other_ids[k]))
            best.append(float(jaccard[k]))
        table[f"match_{name}"] = best_match
        table[f"jaccard_{name}"] = best
        reproduced_in += np.asarray(best) >= REPRODUCED_JACCARD
    table["reproduced_in"] = reproduced_in
    table["other_restarts"] = len(others)
    table["reproduced"] = reproduced_in > len(others) / 2
    return table
