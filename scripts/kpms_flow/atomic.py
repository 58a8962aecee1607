"""Atomic file writes: a reader (or a rerun after a kill) never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file lives in the same directory so that the final ``os.replace`` is
    atomic (same filesystem). On any exception the temporary file is removed and ``path``
    is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # Start from no file: HDF5 writers refuse an empty file that already exists.
    tmp_path.unlink()
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_table(path: str | os.PathLike, frame, **to_csv_kwargs) -> None:
    """Write a pandas DataFrame as TSV (or CSV if the path ends in .csv) atomically."""
    path = Path(path)
    sep = "," if path.suffix == ".csv" else "\t"
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep=sep, index=False, **to_csv_kwargs)


def save_figure(path: str | os.PathLike, fig, **savefig_kwargs) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
    plt.close(fig)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; rename it onto ``path`` only on
    success, so a reader (or a rerun after a kill) never sees a half-filled folder.

    An empty folder at ``path`` (Snakemake may leave one) is replaced; on any exception the
    temporary folder is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's is private (0700); the folder is a normal output
    try:
        yield tmp
        if path.is_dir():
            path.rmdir()  # only an empty one: a full folder raises instead of being lost
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
