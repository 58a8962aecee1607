"""Files given as pose files that are something else: said what they are, and refused."""

from __future__ import annotations

import re
from pathlib import Path

from . import annolid
from .base import fail


def describe_non_pose(path) -> str | None:
    """Say what a file is when it is a known non-pose file (BORIS events, Annolid CSV/frame JSON).

    Parameters
    ----------
    path : path-like
        Any file.

    Returns
    -------
    str or None
        A sentence for an error message, or None when the file is not recognised as one.
    """
    p = Path(path)
    if not p.is_file():
        return None
    if p.suffix.lower() == ".json" and annolid._FRAME_JSON.match(p.name):
        return (
            "is one Annolid per-frame LabelMe file (<video>_%09d.json), not a whole session: "
            f"give its results folder {p.parent} with format annolid"
        )
    if p.suffix.lower() not in (".csv", ".tsv"):
        return None
    kind = annolid.derived_csv_kind(p)
    if kind is not None:
        return annolid._derived_csv_message(p, kind)
    try:
        with open(p, encoding="utf-8", errors="replace") as handle:
            head = [handle.readline() for _ in range(40)]
    except OSError:
        return None
    first = [c.strip().strip('"') for c in head[0].split(",")] if head else []
    rows = [[c.strip().strip('"') for c in re.split(r"[,\t]", line)] for line in head]
    events = any("Behavior" in r and ("Status" in r or "Start (s)" in r) for r in rows)
    if first[:1] == ["Observation id"] or events:
        return (
            "is a BORIS behaviour-event export (observations, behaviours, START/STOP times), "
            "not pose tracking: it has no keypoints to model. Give the pose file of the same "
            "video instead (e.g. the DeepLabCut .h5/.csv)"
        )
    return None


def refuse_non_pose(p: Path, path) -> None:
    what = describe_non_pose(p)
    if what is not None:
        raise fail(path, what)
