"""Facemap keypoints (``.h5``/``.hdf5`` with a ``Facemap`` group).

keypoint-moseq 0.8.1's loader output is used as is: bodyparts sorted by name, arrays in the same
order; a file without likelihoods or coordinates fails there with its own message.
"""

from __future__ import annotations

from pathlib import Path


def sniff(p: Path) -> bool:
    """An h5 with a top-level ``Facemap`` entry."""
    import h5py

    try:
        with h5py.File(p, "r") as f:
            return "Facemap" in f
    except OSError:
        return False
