"""Load one session of pose tracking with keypoint-moseq's own loaders, with checks.

keypoint-moseq 0.8.1 (``keypoint_moseq.io``) has one private loader per format, each taking
``(filepath, name)`` and returning ``(coordinates, confidences, bodyparts)`` where the two
dicts are keyed by ``name`` (one animal) or ``name_<animal>`` (several). We call those loaders
directly (no glob, one file at a time) so that the arrays are exactly what keypoint-moseq would
model, and wrap them with the checks that keypoint-moseq lacks. Its known silent mis-loads,
each turned into an :class:`~kpms_flow.keypoints.InputError` here:

* multi-animal DeepLabCut tables: ``bodyparts`` comes back as a *set* (random order) although
  the arrays follow the header order. We read the header order ourselves.
* DeepLabCut-style tables without a ``likelihood`` coordinate (e.g. MABe exports): the loader
  reshapes the columns by threes and silently returns the wrong keypoints. Refused.
* any DeepLabCut table whose columns are not ``x, y, likelihood`` triples (an extra index column,
  3D ``z`` columns, several scorers): same reshape problem. Refused.
* an h5 with several pandas keys: keypoint-moseq fails. We read the file if exactly one key holds
  a DeepLabCut table, and refuse it (listing the keys) otherwise.
* old SLEAP analysis h5 without ``point_scores``: keypoint-moseq fails with a bare ``KeyError``.
  Refused with the cause.
* a SLEAP ``.slp`` holding several videos: keypoint-moseq silently loads the first video only.
  Refused.
* anipose csv whose bodypart names are not ``\\w+``: keypoint-moseq's header regex silently drops
  them; one without a ``<bodypart>_score`` column per bodypart, or whose ``fnum`` column skips
  frames (rows would be taken as consecutive frames). Refused.
* sleap-anipose h5 that is a SLEAP analysis h5 (or not ``(frames, tracks, nodes, 3)``): the
  loader would slice the wrong axes. Refused.
* a ``.slp`` with several instances per frame but no tracks: keypoint-moseq gets no animal at
  all. Refused.
* NWB files whose PoseEstimationSeries are not all skeleton nodes: keypoint-moseq reads only the
  nodes and silently drops the other series. Refused.
* DANNCE ``.mat`` whose ``sampleID`` is not evenly spaced (predictions of separate stretches of
  video would be joined as consecutive frames), or whose ``pred`` is not
  ``(frames, 3, keypoints)``. Refused. An even stride (e.g. every 10th frame) is recorded as
  ``sample_stride`` and divides a video's frame rate.
* non-pose CSVs given as pose files (BORIS behaviour events, Annolid's derived tracking tables):
  refused saying what they are.

The ``annolid`` format (not a keypoint-moseq format) is read by :mod:`kpms_flow.annolid`.

For every format the number of bodypart names is checked against the array.
Frame rate: the file's (NWB rate/timestamps, SLEAP video metadata), else the session's video
(OpenCV), else the sessions table; any two of them that disagree by more than 1 % are refused.

Missing values are normalised to the session-file contract (:mod:`kpms_flow.keypoints`):
a keypoint with any NaN/inf coordinate becomes all-NaN with confidence 0, and NaN confidences
become 0.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .keypoints import InputError, SessionKeypoints, sha256_of_file

# The format names keypoint-moseq 0.8.1's ``load_keypoints`` accepts (case-sensitive), with the
# extensions its loaders read (the same table as in ``keypoint_moseq.io.load_keypoints``), plus
# ``annolid`` (read by kpms_flow.annolid; its path is a results folder or the .ndjson store).
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "deeplabcut": (".csv", ".h5", ".hdf5"),
    "sleap": (".h5", ".hdf5", ".slp"),
    "anipose": (".csv",),
    "sleap-anipose": (".h5", ".hdf5"),
    "nwb": (".nwb",),
    "facemap": (".h5", ".hdf5"),
    "freipose": (".json",),
    "dannce": (".mat",),
    "annolid": (".ndjson",),
}
# Every format name a sessions table may use (validated here, in sessions.py and in
# workflow/schemas/sessions.schema.yaml).
FORMATS: tuple[str, ...] = tuple(FORMAT_EXTENSIONS)
# The subset read by keypoint-moseq's own loaders.
KPMS_FORMATS: tuple[str, ...] = tuple(f for f in FORMATS if f != "annolid")

# Name keypoint-moseq's loaders get; results come back keyed "s" or "s_<animal>".
_KEY = "s"
# DeepLabCut's per-bodypart coordinate triple, in the order keypoint-moseq's reshape assumes.
_DLC_TRIPLE = ("x", "y", "likelihood")
# Individual that multi-animal DeepLabCut uses for unique (non-animal) bodyparts; keypoint-moseq
# excludes it by default, and so do we.
_DLC_EXCLUDED = ("single",)


# --------------------------------------------------------------------------- small helpers


def _fail(path, cause: str) -> InputError:
    return InputError(f"{path}: {cause}")


def check_format(format: str, path=None) -> str:
    """Return ``format`` if it is one of :data:`FORMATS`, else raise :class:`InputError`.

    Parameters
    ----------
    format : str
        Format name (case-sensitive, as in keypoint-moseq; or ``annolid``).
    path : path-like, optional
        File the format is for; named in the error message.
    """
    if format not in FORMAT_EXTENSIONS:
        where = f"{path}: " if path is not None else ""
        hint = ""
        if isinstance(format, str) and format.strip().lower() in FORMAT_EXTENSIONS:
            hint = f" (names are case-sensitive: did you mean '{format.strip().lower()}'?)"
        raise InputError(
            f"{where}unknown format {format!r}{hint}; valid formats are: {', '.join(FORMATS)}"
        )
    return format


def _check_readable(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise _fail(path, "file not found")
    if not p.is_file():
        raise _fail(path, "is not a regular file (a directory?)")
    try:
        with open(p, "rb") as handle:  # read-only; proves we can actually read it
            handle.read(1)
    except OSError as err:
        raise _fail(path, f"cannot be read ({err.strerror or err})") from err
    return p


def _check_extension(p: Path, format: str, path) -> None:
    ext = p.suffix.lower()
    if ext not in FORMAT_EXTENSIONS[format]:
        raise _fail(
            path,
            f"extension '{p.suffix}' is not read by keypoint-moseq's {format} loader "
            f"(expects {', '.join(FORMAT_EXTENSIONS[format])})",
        )


def _kpms_io():
    # Imported lazily: keypoint_moseq pulls in jax (seconds), and listing DLC animals or
    # reading the sessions table must not pay for that.
    import keypoint_moseq.io as kpms_io

    return kpms_io


def _retry_hdf5_glitch(read, attempts: int = 3):
    """Call ``read()``; retry when h5py fails to decode an HDF5 error message.

    sleap-io probes optional datasets of a .slp (``sessions_json``...) and expects h5py's
    KeyError for a missing one. With h5py 3.16 / HDF5 2.0 the error stack's text is now and
    then garbage and h5py raises UnicodeDecodeError instead (seen in long test runs, depending
    on memory reuse). The read itself is sound, so it is simply repeated.
    """
    for attempt in range(attempts):
        try:
            return read()
        except UnicodeDecodeError:
            if attempt == attempts - 1:
                raise
            import gc

            gc.collect()


def _call_kpms(format: str, p: Path, path) -> tuple[dict, dict, list | set | None]:
    """Run keypoint-moseq's loader for ``format`` on one file; wrap its errors."""
    loader = getattr(_kpms_io(), "_" + format.replace("-", "_") + "_loader")
    try:
        # The loaders print (e.g. "Excluding individual: single"); keep pipeline logs clean.
        with contextlib.redirect_stdout(io.StringIO()), _quiet_nwb():
            return _retry_hdf5_glitch(lambda: loader(str(p), _KEY))
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - any loader failure is a bad input file
        detail = str(err).strip() or "(no message)"
        raise _fail(
            path, f"keypoint-moseq's {format} loader failed: {type(err).__name__}: {detail}"
        ) from err


@contextlib.contextmanager
def _quiet_nwb():
    # pynwb warns on every file written with an older ndx-pose namespace than the installed
    # one; harmless for reading pose series, and it would flood the logs.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Ignoring the following cached namespace")
        yield


def _animal_of_key(key: str) -> str:
    return "" if key == _KEY else key[len(_KEY) + 1 :]


def _pick_animal(found: dict, animal: str, path) -> tuple[str, object]:
    """Select ``animal`` from ``{animal: value}``; explain what the file holds otherwise."""
    animal = "" if animal is None else str(animal)
    names = list(found)
    if animal in found:
        return animal, found[animal]
    if animal == "" and len(names) == 1:
        return names[0], found[names[0]]
    listed = ", ".join(repr(n) for n in names)
    if animal == "":
        raise _fail(
            path, f"holds {len(names)} animals ({listed}); name one in the 'animal' column"
        )
    if names == [""]:
        raise _fail(path, f"holds a single animal, but animal {animal!r} was requested; leave it empty")
    raise _fail(path, f"has no animal {animal!r}; the file holds: {listed}")


def _clean_fps(fps, path) -> float | None:
    if fps is None:
        return None
    try:
        value = float(fps)
    except (TypeError, ValueError) as err:
        raise _fail(path, f"fps {fps!r} is not a number") from err
    if math.isnan(value):
        return None  # NaN is how the sessions table spells "not given"
    if not math.isfinite(value) or value <= 0:
        raise _fail(path, f"fps must be a positive number, got {fps!r}")
    return value


# --------------------------------------------------------------------------- DeepLabCut


@dataclass
class _DlcLayout:
    """Per-animal bodyparts (header order) and their (x, y, likelihood) column positions."""

    animals: dict[str, list[str]]
    positions: dict[str, np.ndarray]  # animal -> int array (bodyparts, 3)
    n_frames_known: int | None = None
    h5_key: str | None = None


def _dlc_layout(columns, path) -> _DlcLayout:
    """Check a DeepLabCut column MultiIndex; return its layout or raise :class:`InputError`.

    keypoint-moseq reshapes each animal's columns by threes, so anything but contiguous
    ``x, y, likelihood`` triples per bodypart would load silently wrong.
    """
    names = [n for n in (getattr(columns, "names", None) or [])]
    if getattr(columns, "nlevels", 1) < 3 or "bodyparts" not in names or "coords" not in names:
        hint = ""
        if names and str(names[-1]) in _DLC_TRIPLE:
            # The level names are a data column's header: the frame-index column is missing.
            hint = " (it looks like a DeepLabCut CSV saved without its frame-index column)"
        raise _fail(
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
        raise _fail(
            path,
            f"DeepLabCut-style table has no 'likelihood' coordinate (coords found: {found}). "
            "keypoint-moseq 0.8.1 reads columns as x, y, likelihood triples and would silently "
            "load this file with the wrong keypoints; add a likelihood column per bodypart "
            "(e.g. 1.0 where tracked) or export it with likelihoods",
        )
    if "z" in coord_set:
        raise _fail(
            path,
            "DeepLabCut table has 'z' coordinates (3D); keypoint-moseq's deeplabcut loader reads "
            "2D x, y, likelihood only; use the anipose format for 3D data",
        )
    stray = [i for i, c in enumerate(coords) if c not in _DLC_TRIPLE]
    if stray:
        i = stray[0]
        raise _fail(
            path,
            f"column {i + 1} {tuple(tuples[i])} is not an x/y/likelihood column; the table has "
            "extra non-coordinate columns (e.g. an extra index column from saving with "
            "pandas after reset_index); the first column must be the frame index and all "
            "others x, y, likelihood per bodypart",
        )
    scorer_level = names.index("scorer") if "scorer" in names else 0
    scorers = list(dict.fromkeys(str(t[scorer_level]) for t in tuples))
    if len(scorers) > 1:
        raise _fail(path, f"DeepLabCut table mixes several scorers ({', '.join(scorers)}); keep one")

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
            raise _fail(path, f"{label}{len(cols)} columns is not a multiple of 3 (x, y, likelihood)")
        bodyparts, pos = [], []
        for k in range(0, len(cols), 3):
            trip = cols[k : k + 3]
            bps = {str(tuples[j][lv["bodyparts"]]) for j in trip}
            got = tuple(coords[j] for j in trip)
            bp = str(tuples[trip[0]][lv["bodyparts"]])
            if len(bps) != 1 or got != _DLC_TRIPLE:
                raise _fail(
                    path,
                    f"{label}columns of bodypart {bp!r} are not x, y, likelihood in that order "
                    f"(found {[tuple(map(str, tuples[j])) for j in trip]}); keypoint-moseq would "
                    "mis-assign them",
                )
            if bp in bodyparts:
                raise _fail(path, f"{label}bodypart {bp!r} appears twice in the header")
            bodyparts.append(bp)
            pos.append(trip)
        animals[ind] = bodyparts
        positions[ind] = np.asarray(pos, dtype=int)
    if not animals:
        raise _fail(
            path,
            "DeepLabCut table holds only the excluded individual(s) "
            f"{', '.join(_DLC_EXCLUDED)} (unique bodyparts), no animals",
        )
    return _DlcLayout(animals=animals, positions=positions)


def _pandas_keys(p: Path) -> list[str]:
    import pandas as pd

    with pd.HDFStore(p, mode="r") as store:
        return list(store.keys())


def _read_h5_head(p: Path, key: str):
    """First row of a pandas h5 key (whole table if its storage cannot be sliced)."""
    import pandas as pd

    with pd.HDFStore(p, mode="r") as store:
        try:
            return store.select(key, start=0, stop=1)
        except Exception:  # noqa: BLE001 - fixed-format storers may not slice; read all
            return store.get(key)


def _dlc_header(p: Path, path) -> _DlcLayout:
    """Read only a DeepLabCut file's header (and at most one row); check it."""
    import pandas as pd

    ext = p.suffix.lower()
    if ext == ".csv":
        # Same header detection as keypoint-moseq's loader, so that we check what it reads.
        with open(p, encoding="utf-8", errors="replace") as handle:
            head = [handle.readline() for _ in range(5)]
        if len([h for h in head if h]) < 3:
            raise _fail(path, "too short for a DeepLabCut CSV (needs 3 or 4 header rows and data)")
        header = [0, 1, 2, 3] if "individuals" in head[1] else [0, 1, 2]
        try:
            df = pd.read_csv(p, header=header, index_col=0, nrows=1)
        except Exception as err:  # noqa: BLE001
            raise _fail(path, f"cannot be parsed as a DeepLabCut CSV: {err}") from err
        layout = _dlc_layout(df.columns, path)
        layout.n_frames_known = len(df)
        return layout

    try:
        keys = _pandas_keys(p)
    except Exception as err:  # noqa: BLE001
        raise _fail(path, f"is not a pandas HDF5 table as DeepLabCut writes ({err})") from err
    if not keys:
        raise _fail(path, "holds no pandas table (is it a SLEAP or other h5? set the format)")
    layouts, problems = {}, {}
    for key in keys:
        try:
            head = _read_h5_head(p, key)
            if not hasattr(head, "columns"):
                raise _fail(path, f"key {key} is not a table")
            layouts[key] = _dlc_layout(head.columns, path)
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
        raise _fail(
            path,
            f"h5 holds {len(keys)} pandas keys ({', '.join(keys)}) and none is a valid "
            f"DeepLabCut table (key {first_key}: {str(first_problem).split(': ', 1)[-1]})",
        )
    raise _fail(
        path,
        f"h5 holds {len(keys)} pandas keys ({', '.join(keys)}) and {len(layouts)} of them are "
        "DeepLabCut tables; keypoint-moseq 0.8.1 cannot read such a file and we cannot choose "
        "between them. Save the wanted table alone "
        "(pandas.read_hdf(file, key).to_hdf(new_file, key='df_with_missing'))",
    )


def _dlc_list_animals(p: Path, path) -> list[str]:
    return list(_dlc_header(p, path).animals)


def _dlc_arrays_from_frame(df, layout: _DlcLayout, animal: str, path):
    """Arrays for one animal by explicit column positions (same values keypoint-moseq gives)."""
    values = df.to_numpy()
    pos = layout.positions[animal]  # (bodyparts, 3)
    picked = values[:, pos]  # (frames, bodyparts, 3)
    return picked[..., :2], picked[..., 2]


def _load_dlc(p: Path, animal: str, path):
    layout = _dlc_header(p, path)
    if layout.n_frames_known == 0:
        raise _fail(path, "DeepLabCut table has no frames")
    chosen, bodyparts = _pick_animal(layout.animals, animal, path)
    extra = {}
    if layout.h5_key is not None or p.suffix.lower() == ".hdf5":
        # keypoint-moseq cannot read these (pd.read_hdf without a key / '.h5' only), so
        # we apply its column layout ourselves, using the positions checked above.
        import pandas as pd

        key = layout.h5_key
        try:
            df = pd.read_hdf(p, key=key, mode="r") if key else pd.read_hdf(p, mode="r")
        except Exception as err:  # noqa: BLE001
            raise _fail(path, f"cannot read the DeepLabCut table: {err}") from err
        coords, confs = _dlc_arrays_from_frame(df, layout, chosen, path)
        if key:
            extra["h5_key"] = key
    else:
        coord_d, conf_d, kp_bodyparts = _call_kpms("deeplabcut", p, path)
        key = _KEY if chosen == "" else f"{_KEY}_{chosen}"
        if key not in coord_d:
            raise _fail(path, f"keypoint-moseq returned no data for animal {chosen!r}")
        coords, confs = coord_d[key], conf_d[key]
        # keypoint-moseq returns a *set* for multi-animal tables; the arrays follow the header
        # order, which is what we report. Sanity-check it is the same set of names.
        if set(map(str, kp_bodyparts)) != set(bodyparts):
            raise _fail(
                path,
                f"header bodyparts {bodyparts} differ from keypoint-moseq's {sorted(kp_bodyparts)}",
            )
    return chosen, coords, confs, list(bodyparts), None, extra


# --------------------------------------------------------------------------- SLEAP


def _sleap_h5_check(p: Path, path) -> list[str]:
    """Check a SLEAP analysis h5 has what keypoint-moseq reads; return its track names."""
    import h5py

    try:
        with h5py.File(p, "r") as f:
            keys = set(f.keys())
            missing = [k for k in ("tracks", "node_names") if k not in keys]
            if missing:
                raise _fail(
                    path,
                    f"is not a SLEAP analysis h5: missing dataset(s) {', '.join(missing)} "
                    f"(found {', '.join(sorted(keys)) or 'none'})",
                )
            shape = f["tracks"].shape
            if len(shape) != 4 or shape[1] not in (2, 3):
                raise _fail(
                    path,
                    f"'tracks' has shape {shape}, not SLEAP's (tracks, 2, nodes, frames); a "
                    "sleap-anipose file? then use format 'sleap-anipose'",
                )
            if "point_scores" not in keys:
                raise _fail(
                    path,
                    "SLEAP analysis h5 has no 'point_scores' dataset (written by old SLEAP "
                    "versions); keypoint-moseq 0.8.1 needs the per-point scores. Re-export it with "
                    "a current SLEAP (sleap-convert --format analysis) or load the .slp file",
                )
            names = []
            if "track_names" in keys:
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["track_names"][()]]
            return names
    except InputError:
        raise
    except OSError as err:
        raise _fail(path, f"is not a readable HDF5 file ({err})") from err


def _sleap_slp_info(p: Path, path) -> tuple[list[str], float | None, dict]:
    """Check a .slp the way keypoint-moseq will read it; return (track names, video fps, attrs)."""
    import sleap_io

    try:
        labels = _retry_hdf5_glitch(lambda: sleap_io.load_slp(str(p), open_videos=False))
    except Exception as err:  # noqa: BLE001
        raise _fail(path, f"cannot be read as a SLEAP .slp file: {type(err).__name__}: {err}") from err
    if len(labels.videos) > 1:
        raise _fail(
            path,
            f".slp holds {len(labels.videos)} videos; keypoint-moseq 0.8.1 silently loads only "
            "the first. Split it into one .slp per video",
        )
    if len(labels.skeletons) != 1:
        raise _fail(path, f".slp holds {len(labels.skeletons)} skeletons; keypoint-moseq needs exactly one")
    if len(labels.labeled_frames) == 0:
        raise _fail(path, ".slp holds no labeled frames")
    # sleap-io (as keypoint-moseq calls it) returns one "track" when every frame holds at most one
    # instance, else only the *tracked* instances: untracked ones are dropped without a word.
    most = max(len(lf.instances) for lf in labels.labeled_frames)
    untracked = sum(1 for lf in labels.labeled_frames for inst in lf.instances if inst.track is None)
    attrs = {}
    if most > 1 and not labels.tracks:
        raise _fail(
            path,
            f".slp has frames with up to {most} instances but no tracks; keypoint-moseq 0.8.1 "
            "(through sleap-io) would load no animal at all. Run SLEAP's tracker (or "
            "proofread identities) first",
        )
    if most > 1 and untracked:
        attrs["untracked_instances_dropped"] = untracked
    fps = None
    if labels.videos:
        try:
            fps = labels.videos[0].fps
        except Exception:  # noqa: BLE001 - fps is optional metadata
            fps = None
    return [t.name for t in labels.tracks], fps, attrs


def _sleap_anipose_check(p: Path, path) -> bool:
    """Check a sleap-anipose points3d h5; return whether it has point scores."""
    import h5py

    try:
        with h5py.File(p, "r") as f:
            keys = set(f.keys())
            if "tracks" not in keys or not isinstance(f["tracks"], h5py.Dataset):
                raise _fail(
                    path,
                    f"is not a sleap-anipose h5: no 'tracks' dataset (found {', '.join(sorted(keys)) or 'none'})",
                )
            shape = f["tracks"].shape
            if "node_names" in keys and len(shape) == 4 and shape[1] == 2:
                raise _fail(
                    path,
                    "is a SLEAP analysis h5 (tracks, 2, nodes, frames), not sleap-anipose output; "
                    "use format 'sleap'",
                )
            if len(shape) != 4 or shape[3] not in (2, 3):
                raise _fail(
                    path,
                    f"'tracks' has shape {shape}, not sleap-anipose's (frames, tracks, nodes, 3); "
                    "keypoint-moseq's loader would slice the wrong axes",
                )
            if "point_scores" in keys:
                scores = f["point_scores"].shape
                if tuple(scores) != tuple(shape[:3]):
                    raise _fail(
                        path,
                        f"'point_scores' has shape {scores}, expected {tuple(shape[:3])} "
                        "(frames, tracks, nodes) to match 'tracks'",
                    )
                return True
            return False
    except InputError:
        raise
    except OSError as err:
        raise _fail(path, f"is not a readable HDF5 file ({err})") from err


def _dannce_check(p: Path, path) -> int | None:
    """Check a DANNCE prediction .mat; return the sampleID stride (None if it has no sampleID)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(p), variable_names=["pred", "sampleID"])
    except Exception as err:  # noqa: BLE001 - not a MATLAB file keypoint-moseq can read
        raise _fail(path, f"cannot be read as a MATLAB .mat file ({type(err).__name__}: {err})") from err
    if "pred" not in mat:
        raise _fail(path, "has no 'pred' variable (DANNCE writes predictions as pred, (frames, 3, keypoints))")
    pred = np.asarray(mat["pred"])
    if pred.ndim != 3 or pred.shape[1] not in (2, 3):
        raise _fail(
            path,
            f"'pred' has shape {pred.shape}, not DANNCE's (frames, 3, keypoints); keypoint-moseq "
            "would transpose the wrong axes",
        )
    if "sampleID" not in mat:
        return None
    ids = np.asarray(mat["sampleID"], dtype=float).ravel()
    if ids.size != pred.shape[0]:
        raise _fail(path, f"'sampleID' has {ids.size} entries but 'pred' has {pred.shape[0]} frames")
    if ids.size < 2:
        return None
    steps = np.unique(np.diff(ids))
    if steps.size != 1 or steps[0] <= 0 or steps[0] != round(steps[0]):
        shown = ", ".join(f"{s:g}" for s in steps[:6])
        raise _fail(
            path,
            f"predictions are not evenly spaced in time (sampleID steps: {shown}); keypoint-moseq "
            "would treat them as consecutive frames. Predict a contiguous stretch of video (or "
            "one session per stretch)",
        )
    return int(steps[0])


def _load_generic(format: str, p: Path, animal: str, path):
    """Formats where keypoint-moseq's loader output is used as is (after the pre-checks)."""
    file_fps = None
    track_names: list[str] = []
    extra: dict = {}
    scores_in_file = True
    if format == "sleap":
        if p.suffix.lower() == ".slp":
            track_names, file_fps, attrs = _sleap_slp_info(p, path)
            extra.update(attrs)
        else:
            track_names = _sleap_h5_check(p, path)
    elif format == "anipose":
        _anipose_check(p, path)
    elif format == "sleap-anipose":
        scores_in_file = _sleap_anipose_check(p, path)
    elif format == "nwb":
        file_fps, scores_in_file = _nwb_info(p, path)
    elif format == "dannce":
        scores_in_file = False
        stride = _dannce_check(p, path)
        if stride is not None:
            extra["sample_stride"] = stride
    elif format == "freipose":
        scores_in_file = False
    coord_d, conf_d, bodyparts = _call_kpms(format, p, path)
    found = {_animal_of_key(k): k for k in coord_d}
    if not found:
        raise _fail(path, f"keypoint-moseq's {format} loader found no animal in the file")
    chosen, key = _pick_animal(found, animal, path)
    match = re.fullmatch(r"track(\d+)", chosen)
    if match and int(match.group(1)) < len(track_names) and len(coord_d) == len(track_names):
        extra["track_name"] = str(track_names[int(match.group(1))])
    if not scores_in_file:
        extra["confidences"] = "none in the file: 1.0 (as keypoint-moseq sets them)"
    coords, confs = coord_d[key], conf_d[key]
    if bodyparts is None:
        # freipose and dannce files carry no names; number them like keypoint-moseq's
        # sleap-anipose loader does.
        bodyparts = [f"bodypart{i}" for i in range(np.shape(coords)[1])]
    return chosen, coords, confs, [str(b) for b in bodyparts], file_fps, extra


def _list_generic(format: str, p: Path, path) -> list[str]:
    if format == "sleap":
        if p.suffix.lower() == ".slp":
            _sleap_slp_info(p, path)
        else:
            _sleap_h5_check(p, path)
    elif format == "anipose":
        _anipose_check(p, path)
    elif format == "sleap-anipose":
        _sleap_anipose_check(p, path)
    elif format == "nwb":
        _nwb_info(p, path)
    elif format == "dannce":
        _dannce_check(p, path)
    coord_d, _, _ = _call_kpms(format, p, path)
    if not coord_d:
        raise _fail(path, f"keypoint-moseq's {format} loader found no animal in the file")
    return [_animal_of_key(k) for k in coord_d]


# --------------------------------------------------------------------------- anipose, NWB


def _anipose_check(p: Path, path) -> None:
    # keypoint-moseq finds bodyparts with the regex (\w+)_x,\1_y,\1_z: names with other
    # characters (spaces, '-') are silently dropped. Compare with a plain count of *_x columns.
    with open(p, encoding="utf-8", errors="replace") as handle:
        header = handle.readline().strip()
    cols = [c.strip() for c in header.split(",")]
    wanted = [c[:-2] for c in cols if c.endswith("_x")]
    found = re.findall(r"(?P<string>\w+)_x,(?P=string)_y,(?P=string)_z", header)
    if not wanted:
        raise _fail(path, "anipose CSV header has no '<bodypart>_x' columns")
    lost = [w for w in wanted if w not in found]
    if lost:
        raise _fail(
            path,
            f"anipose CSV bodyparts {lost} are not <name>_x,<name>_y,<name>_z column triples "
            "of word characters; keypoint-moseq 0.8.1 would silently drop them",
        )
    no_score = [w for w in wanted if f"{w}_score" not in cols]
    if no_score:
        raise _fail(
            path,
            f"anipose CSV has no score column for bodyparts {no_score} (expected <bodypart>_score); "
            "keypoint-moseq needs one per bodypart",
        )
    if "fnum" in cols:
        import pandas as pd

        fnum = pd.read_csv(p, usecols=["fnum"])["fnum"].to_numpy()
        if len(fnum) and not np.array_equal(fnum, np.arange(fnum[0], fnum[0] + len(fnum))):
            gaps = int(np.sum(np.diff(fnum) != 1))
            raise _fail(
                path,
                f"anipose CSV 'fnum' column is not consecutive frames ({gaps} jumps); "
                "keypoint-moseq takes rows as consecutive frames and would join the stretches",
            )


def _nwb_info(p: Path, path) -> tuple[float | None, bool]:
    """Check the series keypoint-moseq will read; return (frame rate or None, has confidences).

    The rate is the first PoseEstimationSeries' ``rate``, else from its timestamps.
    """
    from ndx_pose import PoseEstimation
    from pynwb import NWBHDF5IO

    try:
        with _quiet_nwb(), NWBHDF5IO(str(p), mode="r", load_namespaces=True) as nwb_io:
            objs = [o for o in nwb_io.read().all_children() if isinstance(o, PoseEstimation)]
            if len(objs) != 1:
                # keypoint-moseq's own assertion gives the message (none / several)
                return None, True
            pose = objs[0]
            series = dict(pose.pose_estimation_series)
            try:
                nodes = [str(n) for n in pose.nodes[:]]
            except Exception:  # noqa: BLE001 - keypoint-moseq's loader reports it
                return None, True
            extra_series = [name for name in series if name not in nodes]
            if extra_series:
                raise _fail(
                    path,
                    f"PoseEstimationSeries {extra_series} are not nodes of the skeleton "
                    f"{nodes}; keypoint-moseq 0.8.1 reads only the nodes and would silently drop them",
                )
            if not series:
                return None, True
            first = series[nodes[0]] if nodes and nodes[0] in series else next(iter(series.values()))
            has_conf = first.confidence is not None
            if first.rate is not None:
                return float(first.rate), has_conf
            if first.timestamps is None:
                return None, has_conf
            ts = np.asarray(first.timestamps[()], dtype=float)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - unreadable: keypoint-moseq's loader reports it
        raise _fail(path, f"cannot be read as an NWB file: {type(err).__name__}: {err}") from err
    if ts.size < 2:
        return None, has_conf
    # DLC2NWB writes the frame indices 0, 1, 2, ... as "timestamps" when it cannot find the
    # video; taking them as seconds would give a bogus 1 fps.
    if np.array_equal(ts, np.arange(ts.size, dtype=float)):
        return None, has_conf
    step = float(np.median(np.diff(ts)))
    return (1.0 / step if step > 0 else None), has_conf


# --------------------------------------------------------------------------- non-pose files


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
    from . import annolid

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


def _refuse_non_pose(p: Path, path) -> None:
    what = describe_non_pose(p)
    if what is not None:
        raise _fail(path, what)


# --------------------------------------------------------------------------- video


@dataclass
class VideoInfo:
    """Frame rate and frame count of a video, as OpenCV reads them (None when unknown)."""

    path: str
    fps: float | None
    n_frames: int | None


def _clean_video(video) -> str | None:
    if video is None:
        return None
    if isinstance(video, float) and math.isnan(video):
        return None
    text = str(video).strip()
    return text or None


def video_info(video, path=None) -> VideoInfo:
    """Read a video's frame rate and frame count with OpenCV (keypoint-moseq's video backend).

    Parameters
    ----------
    video : path-like
        The video file.
    path : path-like, optional
        The pose file it belongs to, named in error messages.

    Raises
    ------
    InputError
        The video is missing or OpenCV cannot open it.
    """
    import cv2

    where = path if path is not None else video
    v = Path(video)
    if not v.is_file():
        raise _fail(where, f"video {video} not found (the sessions table's 'video' column)")
    capture = cv2.VideoCapture(str(v))
    try:
        if not capture.isOpened():
            raise _fail(where, f"video {video} cannot be opened by OpenCV (not a video, or an unsupported codec)")
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return VideoInfo(
        path=str(video),
        fps=fps if math.isfinite(fps) and fps > 0 else None,
        n_frames=int(count) if math.isfinite(count) and count > 0 else None,
    )


# --------------------------------------------------------------------------- public API


def list_animals(path, format: str) -> list[str]:
    """List the animals (individuals, tracks) in one pose file.

    Parameters
    ----------
    path : path-like
        The pose file (for ``annolid``: the results folder or its ``.ndjson`` store).
    format : str
        One of :data:`FORMATS`.

    Returns
    -------
    list of str
        ``[""]`` for a single-animal file. For multi-animal DeepLabCut, the individuals in
        header order (without ``single``); for SLEAP and sleap-anipose, ``track0``,
        ``track1``, ... by track index, as keypoint-moseq names them; for Annolid, the
        ``instance_label``/``group_id``/``instance_id`` values in order of appearance. The names
        are the ``animal`` values :func:`load_session` accepts.

    Raises
    ------
    InputError
        Missing/unreadable file, unknown format, or a file the loader would mis-read.
    """
    check_format(format, path)
    if format == "annolid":
        from . import annolid

        return annolid.list_animals(path)
    p = _check_readable(path)
    _refuse_non_pose(p, path)
    _check_extension(p, format, path)
    if format == "deeplabcut":
        return _dlc_list_animals(p, path)
    return _list_generic(format, p, path)


def load_session(
    path,
    format: str,
    session: str,
    animal: str = "",
    fps=None,
    *,
    video="",
    bodyparts=None,
) -> SessionKeypoints:
    """Load one animal of one pose file with keypoint-moseq's loader, with checks.

    Parameters
    ----------
    path : path-like
        The pose file (opened read-only; for ``annolid`` the results folder or its ``.ndjson``
        store). Recorded as given in ``source_path``.
    format : str
        One of :data:`FORMATS`.
    session : str
        Session name to record.
    animal : str, default ""
        Animal to pick (see :func:`list_animals`); empty for a single-animal file.
    fps : float, optional
        Frame rate from the sessions table, used when neither the file nor the video gives one
        (NaN means not given).
    video : path-like, optional
        The session's video (sessions table ``video`` column; empty/NaN means none). Its frame
        rate (OpenCV) is used when the file has none; for ``annolid`` its frame count is the
        session's length. For ``annolid`` a video named ``<video>.<ext>`` beside the results
        folder is used when none is given.
    bodyparts : list of str, optional
        Bodypart order (config ``bodyparts``). Used by ``annolid`` (whose files have no fixed
        bodypart list; labels not in it are refused); other formats return the file's order.

    Returns
    -------
    SessionKeypoints
        ``coordinates`` (frames, bodyparts, dims) float64 with NaN where missing,
        ``confidences`` (frames, bodyparts) with 0 where missing, bodyparts in file order.
        ``fps_source`` is ``"file"`` (NWB series rate/timestamps, SLEAP video fps),
        ``"video"`` (OpenCV on the session's video), ``"table"`` (the ``fps`` argument) or
        ``""`` (unknown).

    Raises
    ------
    InputError
        The message names the file and the cause (see the module docstring for the checks).
        Also raised when two of the file's, the video's and the table's frame rates disagree by
        more than 1 %, and when the pose has more frames than the video.
    """
    check_format(format, path)
    table_fps = _clean_fps(fps, path)
    video_path = _clean_video(video)
    vinfo = video_info(video_path, path) if video_path else None

    if format == "annolid":
        from . import annolid

        source = annolid.find_source(path)
        if vinfo is None:
            found = annolid.find_video(source)
            if found is not None:
                try:
                    vinfo = video_info(found, path)
                except InputError:
                    vinfo = None  # a file that only looks like the video: go without it
        chosen, coords, confs, bodyparts, extra = annolid.load(
            source, animal, bodyparts=bodyparts, n_frames=vinfo.n_frames if vinfo else None
        )
        file_fps = None
        digest = annolid.source_digest(source)
    else:
        p = _check_readable(path)
        _refuse_non_pose(p, path)
        _check_extension(p, format, path)
        if format == "deeplabcut":
            chosen, coords, confs, bodyparts, file_fps, extra = _load_dlc(p, animal, path)
        else:
            chosen, coords, confs, bodyparts, file_fps, extra = _load_generic(format, p, animal, path)
        digest = sha256_of_file(p)

    coords, confs = _check_arrays(coords, confs, bodyparts, path)

    video_fps = None
    if vinfo is not None:
        extra["video"] = vinfo.path
        stride = int(extra.get("sample_stride", 1) or 1)
        if vinfo.fps is not None:
            video_fps = vinfo.fps / stride  # DANNCE predicting every n-th frame
            extra["video_fps"] = vinfo.fps
        if vinfo.n_frames is not None:
            extra["video_frames"] = vinfo.n_frames
            if stride == 1 and coords.shape[0] > vinfo.n_frames:
                raise _fail(
                    path,
                    f"has {coords.shape[0]} frames but its video {vinfo.path} has only "
                    f"{vinfo.n_frames}: is it the right video?",
                )
    rate, source = _choose_fps(path, file_fps, video_fps, table_fps, vinfo)

    return SessionKeypoints(
        session=session,
        coordinates=coords,
        confidences=confs,
        bodyparts=list(bodyparts),
        source_path=str(path),
        source_sha256=digest,
        format=format,
        animal=chosen,
        fps=rate,
        fps_source=source,
        extra_attrs=extra,
    )


def _choose_fps(path, file_fps, video_fps, table_fps, vinfo) -> tuple[float | None, str]:
    """The first known of file, video, table; refuse two that disagree by more than 1 %."""
    if file_fps is not None and not (math.isfinite(file_fps) and file_fps > 0):
        file_fps = None
    known = [
        (name, label, value)
        for name, label, value in (
            ("file", "the file", file_fps),
            ("video", f"the video {vinfo.path if vinfo else ''}", video_fps),
            ("table", "the sessions table", table_fps),
        )
        if value is not None
    ]
    for i, (_, label_a, a) in enumerate(known):
        for _, label_b, b in known[i + 1 :]:
            if abs(a - b) > 0.01 * a:
                raise _fail(
                    path,
                    f"{label_a} says {a:g} fps but {label_b} says {b:g}; fix the table (or "
                    "the video column), or leave its fps empty",
                )
    if not known:
        return None, ""
    return known[0][2], known[0][0]


def _as_float(array, what: str, path) -> np.ndarray:
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise _fail(path, f"{what} are not all numeric ({err})") from err


def _check_arrays(coords, confs, bodyparts, path) -> tuple[np.ndarray, np.ndarray]:
    """Shape/type checks on loader output; normalise missing values to the file contract."""
    coords = _as_float(coords, "coordinates", path)
    confs = _as_float(confs, "confidences", path)
    if coords.ndim != 3 or coords.shape[2] not in (2, 3):
        raise _fail(path, f"coordinates have shape {coords.shape}, expected (frames, bodyparts, 2 or 3)")
    if coords.shape[0] < 1:
        raise _fail(path, "has no frames")
    if len(bodyparts) != coords.shape[1]:
        raise _fail(
            path,
            f"{len(bodyparts)} bodypart names ({', '.join(bodyparts)}) but the array has "
            f"{coords.shape[1]} keypoints",
        )
    if len(set(bodyparts)) != len(bodyparts):
        dup = sorted({b for b in bodyparts if bodyparts.count(b) > 1})
        raise _fail(path, f"bodypart names repeat: {', '.join(dup)}")
    if confs.shape != coords.shape[:2]:
        raise _fail(path, f"confidences have shape {confs.shape}, expected {coords.shape[:2]}")
    coords = coords.copy()
    confs = confs.copy()
    missing = ~np.isfinite(coords).all(axis=2)
    coords[missing] = np.nan
    confs[missing | ~np.isfinite(confs)] = 0.0
    return coords, confs


def validate_session(
    kp: SessionKeypoints, required_bodyparts=(), min_frames: int = 1, used_bodyparts=None
) -> SessionKeypoints:
    """Check a loaded session; raise :class:`InputError` naming ``kp.source_path``.

    Parameters
    ----------
    kp : SessionKeypoints
        The session.
    required_bodyparts : iterable of str
        Names that must be present (e.g. the config's ``use_bodyparts``).
    min_frames : int, default 1
        Minimum number of frames (config key ``min_frames``).
    used_bodyparts : iterable of str, optional
        Bodyparts the model will use (config key ``use_bodyparts``); None means all. A used
        bodypart that is missing in every frame is refused: keypoint-moseq's interpolation
        would give it made-up positions without a warning.

    Returns
    -------
    SessionKeypoints
        ``kp`` unchanged, for chaining.
    """
    where = f"{kp.source_path} (session {kp.session!r})"
    coords = np.asarray(kp.coordinates)
    if not np.issubdtype(coords.dtype, np.number) or np.issubdtype(coords.dtype, np.complexfloating):
        raise InputError(f"{where}: coordinates are not numeric (dtype {coords.dtype})")
    if coords.ndim != 3:
        raise InputError(f"{where}: coordinates have shape {coords.shape}, expected 3 axes")
    if len(kp.bodyparts) != coords.shape[1]:
        raise InputError(
            f"{where}: {len(kp.bodyparts)} bodypart names but the array has {coords.shape[1]} keypoints"
        )
    if np.shape(kp.confidences) != coords.shape[:2]:
        raise InputError(
            f"{where}: confidences have shape {np.shape(kp.confidences)}, expected {coords.shape[:2]}"
        )
    missing = [b for b in required_bodyparts if b not in kp.bodyparts]
    if missing:
        raise InputError(
            f"{where}: missing required bodyparts {', '.join(missing)}; "
            f"available: {', '.join(kp.bodyparts)} (the config keys use_bodyparts, "
            "anterior_bodyparts and posterior_bodyparts name the required bodyparts)"
        )
    if coords.shape[0] < min_frames:
        raise InputError(
            f"{where}: {coords.shape[0]} frames, fewer than the minimum {min_frames} "
            "(config key 'min_frames'): too short to fit"
        )
    missing_frames = np.isnan(coords.astype(np.float64)).any(axis=-1)
    if coords.size == 0 or missing_frames.all():
        raise InputError(f"{where}: all coordinates are missing (NaN)")
    used = list(kp.bodyparts) if used_bodyparts is None else list(used_bodyparts)
    never = [b for i, b in enumerate(kp.bodyparts) if b in used and missing_frames[:, i].all()]
    if never:
        raise InputError(
            f"{where}: bodyparts {', '.join(never)} are missing (NaN) in every frame; "
            "keypoint-moseq would give them made-up positions. Leave them out with config "
            "key 'use_bodyparts', or leave out the session"
        )
    return kp


# --------------------------------------------------------------------------- format sniffing


def sniff_format(path) -> str | None:
    """Guess the format of a file (or Annolid results folder) from its extension and content.

    Parameters
    ----------
    path : path-like
        The file or folder.

    Returns
    -------
    str or None
        A format name, or None when the file does not identify itself (e.g. a CSV that is
        neither a DeepLabCut nor an anipose table, or a ``.json``).
    """
    p = Path(path)
    if p.is_dir():
        from . import annolid

        try:
            annolid.find_source(p)
        except InputError:
            return None
        return "annolid"
    ext = p.suffix.lower()
    if ext == ".ndjson":
        return "annolid"
    if ext == ".slp":
        return "sleap"
    if ext == ".nwb":
        return "nwb"
    if ext == ".mat":
        return "dannce"
    if ext == ".csv":
        try:
            with open(p, encoding="utf-8", errors="replace") as handle:
                first, second = handle.readline(), handle.readline()
        except OSError:
            return None
        cells = [c.strip() for c in first.split(",")]
        if cells and cells[0] == "scorer" and second.split(",")[0].strip() in ("bodyparts", "individuals"):
            return "deeplabcut"
        if any(c.endswith("_x") for c in cells) and any(c.endswith("_score") for c in cells):
            return "anipose"
        return None
    if ext in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(p, "r") as f:
                keys = set(f.keys())
                if "tracks" in keys and "node_names" in keys:
                    return "sleap"
                if "Facemap" in keys:
                    return "facemap"
                if "tracks" in keys and isinstance(f["tracks"], h5py.Dataset):
                    shape = f["tracks"].shape
                    if len(shape) == 4 and shape[3] == 3:
                        return "sleap-anipose"  # (frames, tracks, nodes, xyz), no node names
                is_pandas = any("pandas_type" in f[k].attrs for k in keys if isinstance(f[k], h5py.Group))
        except OSError:
            return None
        if is_pandas:
            try:
                for key in _pandas_keys(p):
                    head = _read_h5_head(p, key)
                    names = list(getattr(head.columns, "names", []) or [])
                    if "bodyparts" in names:
                        return "deeplabcut"
            except Exception:  # noqa: BLE001 - unreadable: not identifiable
                return None
        return None
    return None
