"""DeepLabCut tables (``.h5``/``.hdf5``/``.csv``, also Lightning Pose CSVs).

keypoint-moseq 0.8.1's loader reshapes each animal's columns by threes and returns a multi-animal
table's bodyparts as a *set*; we read and check the header ourselves, so a table it would mis-read
is refused and the bodypart order is the header's. It cannot read an h5 with several pandas keys,
nor ``.hdf5``: we apply its column layout ourselves there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..keypoints import InputError, sha256_of_file
from .base import KEY, Loaded, LoadRequest, PoseFormat, call_keypoint_moseq, fail, pick_animal

# DeepLabCut's per-bodypart coordinate triple, in the order keypoint-moseq's reshape assumes.
_DLC_TRIPLE = ("x", "y", "likelihood")
# Individual that multi-animal DeepLabCut uses for unique (non-animal) bodyparts; keypoint-moseq
# excludes it by default, and so do we.
_DLC_EXCLUDED = ("single",)
# The header labels of DeepLabCut's first column (single- and multi-animal).
_DLC_LABELS = (("scorer", "bodyparts", "coords"), ("scorer", "individuals", "bodyparts", "coords"))


def scorer_of_each_column(names: list[str]) -> tuple[list[str], bool]:
    """Undo pandas' duplicate-name suffixes in a DeepLabCut scorer row.

    ``pandas.read_csv`` with its default single header row renames repeated column names
    ``X, X.1, X.2, ...``; a DeepLabCut CSV read that way and saved again carries these names in
    its scorer row (``DLC_resnet50_..._1030000.1`` ... ``.53``). A name counts as such a duplicate
    only when it is ``<earlier name>.<k>`` with ``k`` the number of earlier columns of that name,
    exactly as pandas numbers them.

    Parameters
    ----------
    names : list of str
        The scorer of each column, in column order.

    Returns
    -------
    tuple
        The scorer of each column with the suffixes removed, and whether any were removed.
    """
    seen: dict[str, int] = {}
    scorers, mangled = [], False
    for name in names:
        match = re.fullmatch(r"(.+)\.(\d+)", name)
        if match and seen.get(match.group(1), 0) == int(match.group(2)) > 0:
            name, mangled = match.group(1), True
        seen[name] = seen.get(name, 0) + 1
        scorers.append(name)
    return scorers, mangled


def _shifted_by_an_index_column(columns) -> bool:
    """DeepLabCut's header labels sit in the first data column: an index column precedes them."""
    tuples = list(columns)
    return bool(tuples) and tuple(str(v).strip() for v in tuples[0]) in _DLC_LABELS


def _is_index_like(column: tuple) -> bool:
    """A column named only in the header's first row (``reset_index()``'s ``index`` column)."""
    return all(str(v).startswith("Unnamed: ") for v in column[1:])


@dataclass
class DlcLayout:
    """Per-animal bodyparts (header order) and their (x, y, likelihood) column positions."""

    animals: dict[str, list[str]]
    positions: dict[str, np.ndarray]  # animal -> int array (bodyparts, 3)
    n_frames_known: int | None = None
    h5_key: str | None = None
    scorer_note: str | None = None  # recorded when pandas' duplicate-name suffixes were read as one scorer


def check_columns(columns, path) -> DlcLayout:
    """Check a DeepLabCut column MultiIndex; return its layout or raise :class:`InputError`.

    keypoint-moseq reshapes each animal's columns by threes, so anything but contiguous
    ``x, y, likelihood`` triples per bodypart would load silently wrong.
    """
    names = [n for n in (getattr(columns, "names", None) or [])]
    if getattr(columns, "nlevels", 1) < 3 or "bodyparts" not in names or "coords" not in names:
        if _shifted_by_an_index_column(columns):
            raise fail(
                path,
                "its first column looks like a pandas index column: an extra index column added "
                "when the table was saved again with pandas, so DeepLabCut's scorer/bodyparts/"
                f"coords labels are in column 2 (header levels found {names}). Drop that column, "
                "e.g. pandas.read_csv(file, index_col=0).to_csv(new_file, index=False), and "
                "use new_file",
            )
        hint = ""
        if names and str(names[-1]) in _DLC_TRIPLE:
            # The level names are a data column's header: the frame-index column is missing.
            hint = " (it looks like a DeepLabCut CSV saved without its frame-index column)"
        raise fail(
            path,
            "is not a DeepLabCut table: expected column header levels scorer/[individuals]/"
            f"bodyparts/coords, found {names}{hint}",
        )
    tuples = list(columns)
    lv = {n: names.index(n) for n in ("bodyparts", "coords")}
    ind_level = names.index("individuals") if "individuals" in names else None
    coords = [str(t[lv["coords"]]) for t in tuples]
    coord_set = set(coords)
    if "likelihood" not in coord_set:
        found = ", ".join(sorted(coord_set))
        raise fail(
            path,
            f"DeepLabCut-style table has no 'likelihood' coordinate (coords found: {found}). "
            "keypoint-moseq 0.8.1 reads columns as x, y, likelihood triples and would silently "
            "load this file with the wrong keypoints; add a likelihood column per bodypart "
            "(e.g. 1.0 where tracked) or export it with likelihoods",
        )
    if "z" in coord_set:
        raise fail(
            path,
            "DeepLabCut table has 'z' coordinates (3D); keypoint-moseq's deeplabcut loader reads "
            "2D x, y, likelihood only; use the anipose format for 3D data",
        )
    stray = [i for i, c in enumerate(coords) if c not in _DLC_TRIPLE]
    if stray:
        i = stray[0]
        if i == 0 and _is_index_like(tuples[0]):
            header = list(range(len(names)))
            raise fail(
                path,
                f"column 1 {tuple(tuples[0])} looks like a pandas index column (an extra index "
                "column, written by saving the table with pandas after reset_index()). Drop it, "
                f"e.g. df = pandas.read_csv(file, header={header}, index_col=0); "
                "df.drop(columns=df.columns[0]).to_csv(new_file), and use new_file",
            )
        raise fail(
            path,
            f"column {i + 1} {tuple(tuples[i])} is not an x/y/likelihood column; the table has "
            "extra non-coordinate columns (e.g. an extra index column from saving with "
            "pandas after reset_index); the first column must be the frame index and all "
            "others x, y, likelihood per bodypart",
        )
    scorer_level = names.index("scorer") if "scorer" in names else 0
    per_column, mangled = scorer_of_each_column([str(t[scorer_level]) for t in tuples])
    scorers = list(dict.fromkeys(per_column))
    if len(scorers) > 1:
        raise fail(path, f"DeepLabCut table mixes several scorers ({', '.join(scorers)}); keep one")

    # Group column positions per animal, keeping header order (dicts keep insertion order).
    per_animal: dict[str, list[int]] = {}
    for i, t in enumerate(tuples):
        ind = "" if ind_level is None else str(t[ind_level])
        per_animal.setdefault(ind, []).append(i)

    animals: dict[str, list[str]] = {}
    positions: dict[str, np.ndarray] = {}
    for ind, cols in per_animal.items():
        if ind in _DLC_EXCLUDED:
            continue
        label = f"individual {ind!r}: " if ind else ""
        if len(cols) % 3:
            raise fail(path, f"{label}{len(cols)} columns is not a multiple of 3 (x, y, likelihood)")
        bodyparts, pos = [], []
        for k in range(0, len(cols), 3):
            trip = cols[k : k + 3]
            bps = {str(tuples[j][lv["bodyparts"]]) for j in trip}
            got = tuple(coords[j] for j in trip)
            bp = str(tuples[trip[0]][lv["bodyparts"]])
            if len(bps) != 1 or got != _DLC_TRIPLE:
                raise fail(
                    path,
                    f"{label}columns of bodypart {bp!r} are not x, y, likelihood in that order "
                    f"(found {[tuple(map(str, tuples[j])) for j in trip]}); keypoint-moseq would "
                    "mis-assign them",
                )
            if bp in bodyparts:
                raise fail(path, f"{label}bodypart {bp!r} appears twice in the header")
            bodyparts.append(bp)
            pos.append(trip)
        animals[ind] = bodyparts
        positions[ind] = np.asarray(pos, dtype=int)
    if not animals:
        raise fail(
            path,
            "DeepLabCut table holds only the excluded individual(s) "
            f"{', '.join(_DLC_EXCLUDED)} (unique bodyparts), no animals",
        )
    note = None
    if mangled:
        note = f"{scorers[0]} (its scorer row carries pandas' duplicate-name suffixes .1, .2, ...)"
    return DlcLayout(animals=animals, positions=positions, scorer_note=note)


def pandas_keys(p: Path) -> list[str]:
    import pandas as pd

    with pd.HDFStore(p, mode="r") as store:
        return list(store.keys())


def read_h5_head(p: Path, key: str):
    """First row of a pandas h5 key (whole table if its storage cannot be sliced)."""
    import pandas as pd

    with pd.HDFStore(p, mode="r") as store:
        try:
            return store.select(key, start=0, stop=1)
        except Exception:  # noqa: BLE001 - fixed-format storers may not slice; read all
            return store.get(key)


def read_header(p: Path, path) -> DlcLayout:
    """Read only a DeepLabCut file's header (and at most one row); check it."""
    import pandas as pd

    ext = p.suffix.lower()
    if ext == ".csv":
        # Same header detection as keypoint-moseq's loader, so that we check what it reads.
        with open(p, encoding="utf-8", errors="replace") as handle:
            head = [handle.readline() for _ in range(5)]
        if len([h for h in head if h]) < 3:
            raise fail(path, "too short for a DeepLabCut CSV (needs 3 or 4 header rows and data)")
        header = [0, 1, 2, 3] if "individuals" in head[1] else [0, 1, 2]
        try:
            df = pd.read_csv(p, header=header, index_col=0, nrows=1)
        except Exception as err:  # noqa: BLE001
            raise fail(path, f"cannot be parsed as a DeepLabCut CSV: {err}") from err
        layout = check_columns(df.columns, path)
        layout.n_frames_known = len(df)
        return layout

    try:
        keys = pandas_keys(p)
    except Exception as err:  # noqa: BLE001
        raise fail(path, f"is not a pandas HDF5 table as DeepLabCut writes ({err})") from err
    if not keys:
        raise fail(path, "holds no pandas table (is it a SLEAP or other h5? set the format)")
    layouts, problems = {}, {}
    for key in keys:
        try:
            head = read_h5_head(p, key)
            if not hasattr(head, "columns"):
                raise fail(path, f"key {key} is not a table")
            layouts[key] = check_columns(head.columns, path)
            layouts[key].n_frames_known = len(head)
        except InputError as err:
            problems[key] = err
    if len(keys) == 1:
        if problems:
            raise problems[keys[0]]
        layout = layouts[keys[0]]
        return layout
    # Several keys: keypoint-moseq's pd.read_hdf(path) fails; read the one DLC table if unique.
    if len(layouts) == 1:
        key = next(iter(layouts))
        layouts[key].h5_key = key
        return layouts[key]
    if not layouts:
        first_key, first_problem = next(iter(problems.items()))
        raise fail(
            path,
            f"h5 holds {len(keys)} pandas keys ({', '.join(keys)}) and none is a valid "
            f"DeepLabCut table (key {first_key}: {str(first_problem).split(': ', 1)[-1]})",
        )
    raise fail(
        path,
        f"h5 holds {len(keys)} pandas keys ({', '.join(keys)}) and {len(layouts)} of them are "
        "DeepLabCut tables; keypoint-moseq 0.8.1 cannot read such a file and we cannot choose "
        "between them. Save the wanted table alone "
        "(pandas.read_hdf(file, key).to_hdf(new_file, key='df_with_missing'))",
    )


def arrays_from_frame(df, layout: DlcLayout, animal: str, path):
    """Arrays for one animal by explicit column positions (same values keypoint-moseq gives)."""
    values = df.to_numpy()
    pos = layout.positions[animal]  # (bodyparts, 3)
    picked = values[:, pos]  # (frames, bodyparts, 3)
    return picked[..., :2], picked[..., 2]


def load(fmt: PoseFormat, request: LoadRequest) -> Loaded:
    """One animal of a DeepLabCut table, with the header's bodypart order."""
    p, path = request.file, request.path
    layout = read_header(p, path)
    if layout.n_frames_known == 0:
        raise fail(path, "DeepLabCut table has no frames")
    chosen, bodyparts = pick_animal(layout.animals, request.animal, path)
    extra = {"scorer": layout.scorer_note} if layout.scorer_note else {}
    if layout.h5_key is not None or p.suffix.lower() == ".hdf5":
        # keypoint-moseq cannot read these (pd.read_hdf without a key / '.h5' only), so
        # we apply its column layout ourselves, using the positions checked above.
        import pandas as pd

        key = layout.h5_key
        try:
            df = pd.read_hdf(p, key=key, mode="r") if key else pd.read_hdf(p, mode="r")
        except Exception as err:  # noqa: BLE001
            raise fail(path, f"cannot read the DeepLabCut table: {err}") from err
        coords, confs = arrays_from_frame(df, layout, chosen, path)
        if key:
            extra["h5_key"] = key
    else:
        coord_d, conf_d, kp_bodyparts = call_keypoint_moseq(fmt, p, path)
        key = KEY if chosen == "" else f"{KEY}_{chosen}"
        if key not in coord_d:
            raise fail(path, f"keypoint-moseq returned no data for animal {chosen!r}")
        coords, confs = coord_d[key], conf_d[key]
        # keypoint-moseq returns a *set* for multi-animal tables; the arrays follow the header
        # order, which is what we report. Sanity-check it is the same set of names.
        if set(map(str, kp_bodyparts)) != set(bodyparts):
            raise fail(
                path,
                f"header bodyparts {bodyparts} differ from keypoint-moseq's {sorted(kp_bodyparts)}",
            )
    return Loaded(
        animal=chosen,
        coordinates=coords,
        confidences=confs,
        bodyparts=list(bodyparts),
        file_fps=None,
        extra=extra,
        sha256=sha256_of_file(p),
        video=request.video,
    )


def list_animals(fmt: PoseFormat, p: Path, path) -> list[str]:
    """Individuals in header order (without ``single``); ``[""]`` for a single-animal table."""
    return list(read_header(p, path).animals)


def sniff(p: Path) -> bool:
    """A CSV starting with ``scorer``/``bodyparts`` rows, or an h5 with a ``bodyparts`` level."""
    if p.suffix.lower() == ".csv":
        try:
            with open(p, encoding="utf-8", errors="replace") as handle:
                first, second = handle.readline(), handle.readline()
        except OSError:
            return False
        cells = [c.strip() for c in first.split(",")]
        return bool(cells) and cells[0] == "scorer" and second.split(",")[0].strip() in (
            "bodyparts",
            "individuals",
        )
    import h5py

    try:
        with h5py.File(p, "r") as f:
            is_pandas = any("pandas_type" in f[k].attrs for k in f.keys() if isinstance(f[k], h5py.Group))
    except OSError:
        return False
    if not is_pandas:
        return False
    try:
        for key in pandas_keys(p):
            head = read_h5_head(p, key)
            if "bodyparts" in list(getattr(head.columns, "names", []) or []):
                return True
    except Exception:  # noqa: BLE001 - unreadable: not identifiable
        return False
    return False


