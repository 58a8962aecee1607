"""DANNCE 3D predictions (``save_data_AVG*.mat``: ``pred``, ``sampleID``).

keypoint-moseq 0.8.1 transposes ``pred`` assuming (frames, 3, keypoints) and takes rows as
consecutive frames; files in another layout or with unevenly spaced ``sampleID`` are refused.
DANNCE files have no confidences (keypoint-moseq sets 1.0) and no bodypart names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import FileFacts, fail


def _dannce_check(p: Path, path) -> int | None:
    """Check a DANNCE prediction .mat; return the sampleID stride (None if it has no sampleID)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(p), variable_names=["pred", "sampleID"])
    except Exception as err:  # noqa: BLE001 - not a MATLAB file keypoint-moseq can read
        raise fail(path, f"cannot be read as a MATLAB .mat file ({type(err).__name__}: {err})") from err
    if "pred" not in mat:
        raise fail(path, "has no 'pred' variable (DANNCE writes predictions as pred, (frames, 3, keypoints))")
    pred = np.asarray(mat["pred"])
    if pred.ndim != 3 or pred.shape[1] not in (2, 3):
        raise fail(
            path,
            f"'pred' has shape {pred.shape}, not DANNCE's (frames, 3, keypoints); keypoint-moseq "
            "would transpose the wrong axes",
        )
    if "sampleID" not in mat:
        return None
    ids = np.asarray(mat["sampleID"], dtype=float).ravel()
    if ids.size != pred.shape[0]:
        raise fail(path, f"'sampleID' has {ids.size} entries but 'pred' has {pred.shape[0]} frames")
    if ids.size < 2:
        return None
    steps = np.unique(np.diff(ids))
    if steps.size != 1 or steps[0] <= 0 or steps[0] != round(steps[0]):
        shown = ", ".join(f"{s:g}" for s in steps[:6])
        raise fail(
            path,
            f"predictions are not evenly spaced in time (sampleID steps: {shown}); keypoint-moseq "
            "would treat them as consecutive frames. Predict a contiguous stretch of video (or "
            "one session per stretch)",
        )
    return int(steps[0])


def precheck(p: Path, path) -> FileFacts:
    """Check the prediction layout; record an even ``sampleID`` stride as ``sample_stride``."""
    stride = _dannce_check(p, path)
    extra = {"sample_stride": stride} if stride is not None else {}
    return FileFacts(scores_in_file=False, extra=extra)


def sniff(p: Path) -> bool:
    """Any ``.mat`` (only the dannce loader reads them)."""
    return True
