"""3D triangulations: anipose ``pose-3d`` CSVs and sleap-anipose ``points3d.h5``.

keypoint-moseq 0.8.1 finds anipose bodyparts with a ``\\w+`` header regex (other names are
silently dropped) and takes rows as consecutive frames; its sleap-anipose loader slices
``tracks`` as (frames, tracks, nodes, 3) whatever the layout. Files it would mis-read are
refused here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..keypoints import InputError
from .base import FileFacts, fail


def _anipose_check(p: Path, path) -> None:
    # keypoint-moseq finds bodyparts with the regex (\w+)_x,\1_y,\1_z: names with other
    # characters (spaces, '-') are silently dropped. Compare with a plain count of *_x columns.
    with open(p, encoding="utf-8", errors="replace") as handle:
        header = handle.readline().strip()
    cols = [c.strip() for c in header.split(",")]
    wanted = [c[:-2] for c in cols if c.endswith("_x")]
    found = re.findall(r"(?P<string>\w+)_x,(?P=string)_y,(?P=string)_z", header)
    if not wanted:
        raise fail(path, "anipose CSV header has no '<bodypart>_x' columns")
    unsafe = [w for w in wanted if not re.fullmatch(r"\w+", w)]
    if unsafe:
        renames = ", ".join(f"{w!r} -> {new!r}" for w, new in ((w, re.sub(r"\W", "_", w)) for w in unsafe))
        raise fail(
            path,
            f"anipose CSV bodyparts {unsafe} have characters other than letters, digits and '_'; "
            "keypoint-moseq 0.8.1 finds bodyparts by the pattern <name>_x,<name>_y,<name>_z with "
            "<name> of word characters and would silently drop them. Rename them in the CSV "
            f"header ({renames}), e.g. import re, pandas; pandas.read_csv(file).rename(columns="
            "lambda c: re.sub(r'\\W', '_', c)).to_csv(new_file, index=False); then use new_file, "
            "and the new names in the config",
        )
    lost = [w for w in wanted if w not in found]
    if lost:
        raise fail(
            path,
            f"anipose CSV bodyparts {lost} are not <name>_x,<name>_y,<name>_z column triples "
            "of word characters; keypoint-moseq 0.8.1 would silently drop them",
        )
    no_score = [w for w in wanted if f"{w}_score" not in cols]
    if no_score:
        raise fail(
            path,
            f"anipose CSV has no score column for bodyparts {no_score} (expected <bodypart>_score); "
            "keypoint-moseq needs one per bodypart",
        )
    if "fnum" in cols:
        import pandas as pd

        fnum = pd.read_csv(p, usecols=["fnum"])["fnum"].to_numpy()
        if len(fnum) and not np.array_equal(fnum, np.arange(fnum[0], fnum[0] + len(fnum))):
            gaps = int(np.sum(np.diff(fnum) != 1))
            raise fail(
                path,
                f"anipose CSV 'fnum' column is not consecutive frames ({gaps} jumps); "
                "keypoint-moseq takes rows as consecutive frames and would join the stretches",
            )


def precheck_anipose(p: Path, path) -> FileFacts:
    """Check an anipose CSV (see :func:`_anipose_check`)."""
    _anipose_check(p, path)
    return FileFacts()


def sniff_anipose(p: Path) -> bool:
    """A CSV header with ``<bodypart>_x`` and ``<bodypart>_score`` columns."""
    try:
        with open(p, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return False
    cells = [c.strip() for c in first.split(",")]
    return any(c.endswith("_x") for c in cells) and any(c.endswith("_score") for c in cells)


def _sleap_anipose_check(p: Path, path) -> bool:
    """Check a sleap-anipose points3d h5; return whether it has point scores."""
    import h5py

    try:
        with h5py.File(p, "r") as f:
            keys = set(f.keys())
            if "tracks" not in keys or not isinstance(f["tracks"], h5py.Dataset):
                raise fail(
                    path,
                    f"is not a sleap-anipose h5: no 'tracks' dataset (found {', '.join(sorted(keys)) or 'none'})",
                )
            shape = f["tracks"].shape
            if "node_names" in keys and len(shape) == 4 and shape[1] == 2:
                raise fail(
                    path,
                    "is a SLEAP analysis h5 (tracks, 2, nodes, frames), not sleap-anipose output; "
                    "use format 'sleap'",
                )
            if len(shape) != 4 or shape[3] not in (2, 3):
                raise fail(
                    path,
                    f"'tracks' has shape {shape}, not sleap-anipose's (frames, tracks, nodes, 3); "
                    "keypoint-moseq's loader would slice the wrong axes",
                )
            if "point_scores" in keys:
                scores = f["point_scores"].shape
                if tuple(scores) != tuple(shape[:3]):
                    raise fail(
                        path,
                        f"'point_scores' has shape {scores}, expected {tuple(shape[:3])} "
                        "(frames, tracks, nodes) to match 'tracks'",
                    )
                return True
            return False
    except InputError:
        raise
    except OSError as err:
        raise fail(path, f"is not a readable HDF5 file ({err})") from err


def precheck_sleap_anipose(p: Path, path) -> FileFacts:
    """Check a sleap-anipose h5; confidences are 1.0 when it has no point scores."""
    return FileFacts(scores_in_file=_sleap_anipose_check(p, path))


def sniff_sleap_anipose(p: Path) -> bool:
    """An h5 whose ``tracks`` dataset is (frames, tracks, nodes, 3), without node names."""
    import h5py

    try:
        with h5py.File(p, "r") as f:
            tracks = f.get("tracks")
            return isinstance(tracks, h5py.Dataset) and len(tracks.shape) == 4 and tracks.shape[3] == 3
    except OSError:
        return False
