"""FreiPose 3D predictions (``.json`` records with ``kp_xyz``).

keypoint-moseq 0.8.1's loader output is used as is; the file has no confidences (1.0, as
keypoint-moseq sets them) and no bodypart names. A ``.json`` does not identify itself (Annolid
and LabelMe folders are full of them), so the format is never guessed: name it in the table.
"""

from __future__ import annotations

from pathlib import Path

from .base import FileFacts


def precheck(p: Path, path) -> FileFacts:
    """Nothing to check before the loader; record that confidences are not in the file."""
    return FileFacts(scores_in_file=False)
