"""Simulate the GPU machine's package set on a CPU machine: refuse every import that would
not be there.

The GPU machine (device README, KINDS.md) has a fixed image of Python packages plus what
travels as wheels. A missing pure-Python dependency would only show there, costing device
minutes. With ``install()`` this process refuses (ModuleNotFoundError, as the machine
would) any top-level module that belongs to an installed distribution that is neither in
the image's list (``image_packages.txt``, copied from KINDS.md) nor in the carried wheel
set (``wheels.txt``). Standard-library and project modules (no distribution) pass.

What it cannot simulate: the image's versions (numpy 2.5, jax 0.11.2...); only names.
"""

from __future__ import annotations

import importlib.abc
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def listed(path: Path) -> set[str]:
    """Distribution names of a list file: one per line, ``name`` or ``name==version``;
    ``#`` starts a comment."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(normalise(re.split(r"[=<>!~ ;\[]", line, maxsplit=1)[0]))
    return names


def allowed_distributions() -> set[str]:
    # kpms-flow: the project itself travels as the working tree (scripts/ on PYTHONPATH).
    return listed(HERE / "image_packages.txt") | listed(HERE / "wheels.txt") | {"kpms-flow"}


class _Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, owners: dict[str, list[str]], allowed: set[str]):
        self.owners, self.allowed, self.refused = owners, allowed, set()

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        dists = self.owners.get(top)
        if not dists or any(normalise(d) in self.allowed for d in dists):
            return None  # stdlib, project code, or a package the machine has
        self.refused.add(top)
        raise ModuleNotFoundError(
            f"No module named {top!r} (image simulation: distribution {dists[0]} is neither in "
            "the GPU image nor in benchmarks/gpu/wheels.txt)",
            name=top,
        )


_FINDER: _Refuse | None = None


def install() -> _Refuse:
    """Put the refusing finder first on ``sys.meta_path`` (idempotent)."""
    global _FINDER
    if _FINDER is None:
        from importlib.metadata import packages_distributions

        _FINDER = _Refuse(packages_distributions(), allowed_distributions())
        sys.meta_path.insert(0, _FINDER)
    return _FINDER


def refused() -> list[str]:
    """Top-level modules refused so far in this process (caught ImportErrors included)."""
    return sorted(_FINDER.refused) if _FINDER else []
