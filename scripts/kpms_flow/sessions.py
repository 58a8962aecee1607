"""The sessions table (``config/sessions.tsv``): one row per animal per recording.

Columns (tab-separated)::

    session  path  format  animal  fps  group  train  video

``session``, ``path`` and ``format`` are required; ``animal`` is empty for single-animal files;
``fps`` is an optional float; ``group`` optional text; ``train`` an optional bool (default true);
``video`` an optional path. Extra columns are kept as text.

``kpms-flow-sessions PATTERN ...`` builds the table from files, folders (searched recursively)
and globs. Annolid results folders (holding ``<video>_annotations.ndjson`` or per-frame
``<video>_%09d.json``) found there become ``annolid`` sessions whose ``path`` is the folder.
"""

from __future__ import annotations

import argparse
import glob
import math
import re
import sys
from pathlib import Path

import pandas as pd

from .atomic import write_table
from .formats import (
    DISCOVER_EXTENSIONS,
    FORMAT_EXTENSIONS,
    FORMATS,
    annolid,
    check_format,
    describe_non_pose,
    list_animals,
    sniff_format,
)
from .keypoints import InputError

COLUMNS = ["session", "path", "format", "animal", "fps", "group", "train", "video"]
REQUIRED_COLUMNS = ["session", "path", "format"]
TEXT_COLUMNS = ["session", "path", "format", "animal", "group", "video"]

# Session names become file names and Snakemake wildcard values: keep them to a portable set
# starting with a letter or digit (not '.', hidden or '..', nor '-', read as an option). Same
# pattern as workflow/schemas/sessions.schema.yaml and the Snakefile's wildcard constraint.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}

def safe_name(text: str) -> str:
    """Make ``text`` safe as a session name: only ``[A-Za-z0-9._-]``, others become ``_``.

    Parameters
    ----------
    text : str
        Any name (a file stem, ``stem.animal``).

    Returns
    -------
    str
        The sanitised name, prefixed with ``s`` if it would not start with a letter or digit.
    """
    name = _UNSAFE_CHAR.sub("_", str(text))
    if not SAFE_NAME.fullmatch(name):
        name = "s" + name
    return name


def is_safe_name(text: str) -> bool:
    """True if ``text`` is usable as a session name unchanged (see :data:`SAFE_NAME`)."""
    return bool(SAFE_NAME.fullmatch(str(text)))


def infer_format(path) -> str:
    """Return the format of a pose file (or Annolid results folder), or raise :class:`InputError`.

    ``.slp`` is sleap, ``.nwb`` nwb, ``.mat`` dannce, ``.ndjson`` (and a folder of Annolid
    annotations) annolid. ``.h5``/``.csv`` are read by several loaders, so the content decides:
    a pandas table with a ``bodyparts`` header level or a CSV starting with
    ``scorer``/``bodyparts`` rows is deeplabcut, an h5 with ``tracks`` and ``node_names`` is
    sleap, ``tracks`` alone shaped (frames, tracks, nodes, 3) sleap-anipose, ``Facemap`` facemap,
    a CSV with ``*_x``/``*_score`` columns anipose. Known non-pose tables (BORIS events,
    Annolid's derived CSVs) are refused saying what they are.
    """
    fmt = sniff_format(path)
    if fmt is None:
        what = describe_non_pose(path)
        if what is not None:
            raise InputError(f"{path}: {what}")
        ext = Path(path).suffix.lower()
        readers = [f for f, exts in FORMAT_EXTENSIONS.items() if ext in exts]
        if readers:
            raise InputError(
                f"{path}: cannot tell the pose format from the content ('{ext}' is read by "
                f"keypoint-moseq's {', '.join(readers)} loader{'s' if len(readers) > 1 else ''}); "
                "pass --format"
            )
        raise InputError(
            f"{path}: '{ext or '(no extension)'}' is not a pose file extension keypoint-moseq reads; "
            f"valid formats: {', '.join(FORMATS)}"
        )
    return fmt


def _has_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _expand(patterns, extensions, with_annolid: bool = False) -> list[tuple[Path, bool]]:
    """Files (and Annolid results folders) for the patterns, each with whether it was named
    explicitly. ``with_annolid`` also lists Annolid results folders found in folders."""
    found: list[tuple[Path, bool]] = []

    def from_dir(folder: Path) -> list[Path]:
        files = sorted(
            f
            for f in folder.rglob("*")
            if f.is_file()
            and f.suffix.lower() in extensions
            # skip hidden files (e.g. half-written temporaries of atomic writes)
            and not any(part.startswith(".") for part in f.relative_to(folder).parts)
        )
        if with_annolid:
            files = sorted(files + annolid.find_results(folder))
        return files

    what = ", ".join(extensions) + (" or Annolid results folders" if with_annolid else "")
    for pattern in patterns:
        pattern = str(pattern)
        p = Path(pattern)
        if p.is_dir():
            files = from_dir(p)
            if not files:
                raise InputError(f"{pattern}: folder holds no files with extension {what}")
            found += [(f, False) for f in files]
        elif p.is_file():
            found.append((p, True))
        elif _has_glob(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            files = []
            for m in map(Path, matches):
                if m.is_dir():
                    files += from_dir(m)
                elif m.is_file() and not m.name.startswith(".") and (
                    m.suffix.lower() in extensions or (with_annolid and m.suffix.lower() == ".ndjson")
                ):
                    files.append(m)
            if not files:
                raise InputError(f"{pattern}: pattern matches no pose files ({what})")
            found += [(f, False) for f in files]
        else:
            raise InputError(f"{pattern}: no such file or folder")

    unique, seen = [], set()
    for f, explicit in found:
        key = f.resolve()
        if key not in seen:  # the same file through two patterns counts once
            seen.add(key)
            unique.append((f, explicit))
    return unique


def discover_sessions(patterns: list[str], format: str | None = None) -> pd.DataFrame:
    """Build a sessions table from files, folders (recursive) and globs.

    Parameters
    ----------
    patterns : list of str
        Files, folders or glob patterns (``**`` allowed).
    format : str, optional
        Format of all files. Without it the format is inferred per file (see
        :func:`infer_format`); Annolid results folders are found in folders either way
        (``--format annolid`` lists only those).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, one row per animal (session ``<file stem>.<animal>`` for
        multi-animal files, ``<file stem>`` otherwise, made path-safe; for Annolid the stem is
        the video's name and ``path`` the results folder). ``fps`` is NaN,
        ``group``/``animal``/``video`` text, ``train`` True. ``df.attrs["skipped"]`` lists
        ``(path, reason)`` for files found by a folder or glob that are not usable pose files
        (a file named explicitly raises instead).

    Raises
    ------
    InputError
        Unknown format, a pattern that matches nothing, an explicitly named file that cannot be
        used, no sessions at all, or two sessions with the same name.
    """
    if format is not None:
        check_format(format)
    if format == "annolid":
        extensions: tuple[str, ...] = ()
    else:
        extensions = FORMAT_EXTENSIONS[format] if format else DISCOVER_EXTENSIONS
    rows, skipped = [], []
    for path, explicit in _expand(patterns, extensions, with_annolid=format in (None, "annolid")):
        try:
            fmt = format or infer_format(path)
            animals = list_animals(path, fmt)
            # An Annolid session is named after its video, not after the folder or store file.
            stem = annolid.find_source(path).video_stem if fmt == "annolid" else path.stem
        except InputError as err:
            if explicit:
                raise
            skipped.append((str(path), str(err)))
            continue
        for animal in animals:
            name = stem if animal == "" else f"{stem}.{animal}"
            rows.append(
                {
                    "session": safe_name(name),
                    "path": str(path),
                    "format": fmt,
                    "animal": animal,
                    "fps": math.nan,
                    "group": "",
                    "train": True,
                    "video": "",
                }
            )
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        reasons = "".join(f"\n  {reason}" for _, reason in skipped)
        raise InputError(f"no pose sessions found in {', '.join(map(str, patterns))}{reasons}")
    dup = table[table["session"].duplicated(keep=False)]
    if not dup.empty:
        lines = [
            f"\n  {name}: " + ", ".join(group["path"]) for name, group in dup.groupby("session", sort=True)
        ]
        raise InputError(
            "duplicate session names (the same file stem twice, e.g. a DeepLabCut .h5 and its "
            ".csv/.nwb, or names equal after replacing unsafe characters); pass --format or "
            "name the files explicitly:" + "".join(lines)
        )
    table["fps"] = table["fps"].astype(float)
    table["train"] = table["train"].astype(bool)
    table.attrs["skipped"] = skipped
    return table


def _parse_bool(value: str, where: str) -> bool:
    text = value.strip().lower()
    if text == "":
        return True
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{where}: train {value!r} is not a boolean (true/false, yes/no, 1/0)")


def _parse_fps(value: str, where: str) -> float:
    text = value.strip()
    if text == "" or text.lower() == "nan":
        return math.nan
    try:
        fps = float(text)
    except ValueError as err:
        raise InputError(f"{where}: fps {value!r} is not a number") from err
    if not math.isfinite(fps) or fps <= 0:
        raise InputError(f"{where}: fps {value!r} must be a positive number")
    return fps


def read_sessions_table(path) -> pd.DataFrame:
    """Read and check a sessions table (tab-separated).

    Parameters
    ----------
    path : path-like
        The table, e.g. ``config/sessions.tsv``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` first (missing optional ones added), then any extra columns.
        Text columns hold ``""`` for missing values, ``fps`` is float (NaN if empty),
        ``train`` is bool (true/false, yes/no, 1/0, any case; empty means True).

    Raises
    ------
    InputError
        Naming the table and the row (1-based, header not counted): missing file or required columns, empty required
        values, unknown format, unsafe or duplicate session names, bad fps or train values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: sessions table not found")
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError as err:
        raise InputError(f"{path}: sessions table is empty (needs a header row with {', '.join(REQUIRED_COLUMNS)})") from err
    except Exception as err:  # noqa: BLE001 - malformed TSV
        raise InputError(f"{path}: cannot be read as a tab-separated table ({err})") from err
    raw.columns = [str(c).strip() for c in raw.columns]

    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        hint = ""
        if len(raw.columns) == 1 and "," in raw.columns[0]:
            hint = " (the file looks comma-separated; it must be tab-separated)"
        raise InputError(
            f"{path}: missing required column(s) {', '.join(missing)}; found: "
            f"{', '.join(raw.columns)}{hint}"
        )
    dup_cols = sorted({c for c in raw.columns if list(raw.columns).count(c) > 1})
    if dup_cols:
        raise InputError(f"{path}: column(s) {', '.join(dup_cols)} appear more than once")

    if raw.empty:
        raise InputError(f"{path}: sessions table has no rows")
    table = raw.apply(lambda col: col.str.strip())
    for column in COLUMNS:
        if column not in table.columns:
            table[column] = ""

    fps, train = [], []
    for i, row in table.iterrows():
        where = f"{path} row {i + 1} (session {row['session']!r})"  # data rows, 1-based
        for column in REQUIRED_COLUMNS:
            if row[column] == "":
                raise InputError(f"{path} row {i + 1}: empty {column!r}")
        if not is_safe_name(row["session"]):
            raise InputError(
                f"{where}: session name is not safe for file paths; use only letters, digits, "
                f"'.', '_' and '-', starting with a letter or digit (e.g. {safe_name(row['session'])!r})"
            )
        check_format(row["format"], where)  # names the valid ones (case-sensitive)
        fps.append(_parse_fps(row["fps"], where))
        train.append(_parse_bool(row["train"], where))

    dups = table["session"][table["session"].duplicated(keep=False)]
    if not dups.empty:
        lines = [
            f"{name} (rows {', '.join(str(i + 1) for i in idx)})"
            for name, idx in dups.groupby(dups).groups.items()
        ]
        raise InputError(f"{path}: duplicate session names: {'; '.join(lines)}")

    table["fps"] = pd.Series(fps, index=table.index, dtype=float)
    table["train"] = pd.Series(train, index=table.index, dtype=bool)
    extra = [c for c in table.columns if c not in COLUMNS]
    table = table[COLUMNS + extra].reset_index(drop=True)
    for column in TEXT_COLUMNS + extra:
        table[column] = table[column].astype(object)
    return table


def main(argv=None) -> int:
    """``kpms-flow-sessions``: write ``config/sessions.tsv`` from pose files.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; exits with status 2 and a one-line error on bad input.
    """
    parser = argparse.ArgumentParser(
        prog="kpms-flow-sessions",
        description="Build the sessions table (one row per animal per pose file).",
    )
    parser.add_argument("patterns", nargs="+", metavar="PATTERN", help="pose files, folders (recursive) or globs")
    parser.add_argument("--format", help=f"format of all files: {', '.join(FORMATS)} (default: infer)")
    parser.add_argument("--fps", type=float, help="frame rate to write for every session")
    parser.add_argument("--group", default="", help="group to write for every session")
    parser.add_argument("--output", default="config/sessions.tsv", help="table to write (default: %(default)s)")
    args = parser.parse_args(argv)

    try:
        if args.fps is not None:
            _parse_fps(str(args.fps), "--fps")
        table = discover_sessions(args.patterns, format=args.format)
    except InputError as err:
        print(f"kpms-flow-sessions: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err

    skipped = table.attrs.get("skipped", [])
    if args.fps is not None:
        table["fps"] = float(args.fps)
    table["group"] = args.group
    table.attrs = {}  # attrs are not table content
    write_table(args.output, table)
    n_files = table["path"].nunique()
    print(f"wrote {len(table)} sessions from {n_files} files to {args.output}")
    for _, reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)  # reason names the file
    return 0


if __name__ == "__main__":
    main()
