"""What every format module shares: the format record, and the calls into keypoint-moseq.

A format is one :class:`PoseFormat` record (name, extensions, sniffing, pre-check, loader,
animal listing), defined once in :mod:`kpms_flow.formats.registry`. Formats read by
keypoint-moseq's own loader only give a pre-check (what the file says before the loader runs,
and the files it would mis-read); :func:`load_with_keypoint_moseq` does the rest.
"""

from __future__ import annotations

import contextlib
import gc
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..keypoints import InputError, sha256_of_file

# Name keypoint-moseq's loaders get; results come back keyed "s" or "s_<animal>".
KEY = "s"


def fail(path, cause: str) -> InputError:
    """The error for a bad input file: ``"<path>: <cause>"``."""
    return InputError(f"{path}: {cause}")


# --------------------------------------------------------------------------- what loaders exchange


@dataclass(frozen=True)
class VideoInfo:
    """Frame rate and frame count of a video, as OpenCV reads them (None when unknown)."""

    path: str
    fps: float | None
    n_frames: int | None


@dataclass(frozen=True)
class FileFacts:
    """What a pre-check learnt about a file before keypoint-moseq's loader reads it.

    Attributes
    ----------
    file_fps : float or None
        Frame rate recorded in the file.
    scores_in_file : bool
        False when the file has no confidences (keypoint-moseq sets them to 1.0).
    track_names : tuple of str
        Track names by index (SLEAP), recorded as ``track_name``.
    extra : dict
        Attributes recorded in the session file.
    """

    file_fps: float | None = None
    scores_in_file: bool = True
    track_names: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


@dataclass
class LoadRequest:
    """One animal of one pose file, as :func:`kpms_flow.formats.load_session` asks for it.

    Attributes
    ----------
    path : path-like
        The path as given (named in error messages).
    file : Path
        The checked file (for formats that read folders, ``Path(path)`` unchecked).
    animal : str
        Animal to pick; empty for a single-animal file.
    bodyparts : list of str or None
        Bodypart order from the config (used by formats without a fixed bodypart list).
    video : VideoInfo or None
        The session's video, when one is given.
    """

    path: object
    file: Path
    animal: str
    bodyparts: list | None = None
    video: VideoInfo | None = None


@dataclass
class Loaded:
    """A loader's result, before the checks every format shares.

    Attributes
    ----------
    animal : str
        The animal chosen.
    coordinates, confidences : array-like
        ``(frames, bodyparts, dims)`` and ``(frames, bodyparts)``.
    bodyparts : list of str
        In the file's order.
    file_fps : float or None
        Frame rate recorded in the file.
    extra : dict
        Attributes recorded in the session file.
    sha256 : str
        Digest of what was read (the session's provenance).
    video : VideoInfo or None
        The video used (a loader may find one itself, as for Annolid).
    """

    animal: str
    coordinates: object
    confidences: object
    bodyparts: list
    file_fps: float | None
    extra: dict
    sha256: str
    video: VideoInfo | None = None


# --------------------------------------------------------------------------- keypoint-moseq


def kpms_io():
    """``keypoint_moseq.io``, imported on first use.

    keypoint_moseq pulls in jax (seconds); listing DLC animals or reading the sessions table
    must not pay for that.
    """
    import keypoint_moseq.io as kpms_io

    return kpms_io


def retry_hdf5_glitch(read, attempts: int = 3):
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
            gc.collect()


@contextlib.contextmanager
def quiet_nwb():
    """Silence pynwb's warning about files written with an older ndx-pose namespace.

    It is harmless for reading pose series and would flood the logs.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Ignoring the following cached namespace")
        yield


def call_keypoint_moseq(fmt: PoseFormat, p: Path, path) -> tuple[dict, dict, list | set | None]:
    """Run keypoint-moseq's loader for a format on one file; wrap its errors.

    Parameters
    ----------
    fmt : PoseFormat
        The format; a failure matching one of its ``known_failures`` is explained in the
        user's terms, with the library's text on the line below.
    p : Path
        The checked file.
    path : path-like
        The path as given (named in error messages).

    Returns
    -------
    tuple
        ``(coordinates, confidences, bodyparts)`` as the loader returns them: dicts keyed
        ``"s"`` or ``"s_<animal>"``.
    """
    loader = getattr(kpms_io(), "_" + fmt.name.replace("-", "_") + "_loader")
    try:
        # The loaders print (e.g. "Excluding individual: single"); keep pipeline logs clean.
        with contextlib.redirect_stdout(io.StringIO()), quiet_nwb():
            return retry_hdf5_glitch(lambda: loader(str(p), KEY))
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - any loader failure is a bad input file
        detail = str(err).strip() or "(no message)"
        original = f"keypoint-moseq's {fmt.name} loader failed: {type(err).__name__}: {detail}"
        raise fail(path, explain_failure(fmt, p, original)) from err


def explain_failure(fmt: PoseFormat, p: Path, original: str) -> str:
    """The cause in the user's terms and what to do, then ``original`` on the line below.

    Parameters
    ----------
    fmt : PoseFormat
        The format whose ``known_failures`` are tried in order.
    p : Path
        The file (an explanation may read it, e.g. for the version that wrote it).
    original : str
        The library's failure, ``"<what failed>: <ExceptionType>: <message>"``.

    Returns
    -------
    str
        ``original`` unchanged when no known failure matches.
    """
    for known in fmt.known_failures:
        if re.search(known.pattern, original):
            return f"{known.explain(p)}\n  {original}"
    return original


def animal_of_key(key: str) -> str:
    """The animal of a keypoint-moseq result key (``"s"`` -> ``""``, ``"s_track0"`` -> ``"track0"``)."""
    return "" if key == KEY else key[len(KEY) + 1 :]


def pick_animal(found: dict, animal: str, path) -> tuple[str, object]:
    """Select ``animal`` from ``{animal: value}``; explain what the file holds otherwise."""
    animal = "" if animal is None else str(animal)
    names = list(found)
    if animal in found:
        return animal, found[animal]
    if animal == "" and len(names) == 1:
        return names[0], found[names[0]]
    listed = ", ".join(repr(n) for n in names)
    if animal == "":
        raise fail(
            path, f"holds {len(names)} animals ({listed}); name one in the 'animal' column"
        )
    if names == [""]:
        raise fail(path, f"holds a single animal, but animal {animal!r} was requested; leave it empty")
    raise fail(path, f"has no animal {animal!r}; the file holds: {listed}")


def load_with_keypoint_moseq(fmt: PoseFormat, request: LoadRequest) -> Loaded:
    """Load with keypoint-moseq's loader after the format's pre-check; its output used as is."""
    p, path = request.file, request.path
    facts = fmt.precheck(p, path)
    extra = dict(facts.extra)
    coord_d, conf_d, bodyparts = call_keypoint_moseq(fmt, p, path)
    found = {animal_of_key(k): k for k in coord_d}
    if not found:
        raise fail(path, f"keypoint-moseq's {fmt.name} loader found no animal in the file")
    chosen, key = pick_animal(found, request.animal, path)
    match = re.fullmatch(r"track(\d+)", chosen)
    if match and int(match.group(1)) < len(facts.track_names) and len(coord_d) == len(facts.track_names):
        extra["track_name"] = str(facts.track_names[int(match.group(1))])
    if not facts.scores_in_file:
        extra["confidences"] = "none in the file: 1.0 (as keypoint-moseq sets them)"
    coords, confs = coord_d[key], conf_d[key]
    if bodyparts is None:
        # freipose and dannce files carry no names; number them like keypoint-moseq's
        # sleap-anipose loader does.
        bodyparts = [f"bodypart{i}" for i in range(np.shape(coords)[1])]
    return Loaded(
        animal=chosen,
        coordinates=coords,
        confidences=confs,
        bodyparts=[str(b) for b in bodyparts],
        file_fps=facts.file_fps,
        extra=extra,
        sha256=sha256_of_file(p),
        video=request.video,
    )


def list_with_keypoint_moseq(fmt: PoseFormat, p: Path, path) -> list[str]:
    """The animals keypoint-moseq's loader finds, after the format's pre-check."""
    fmt.precheck(p, path)
    coord_d, _, _ = call_keypoint_moseq(fmt, p, path)
    if not coord_d:
        raise fail(path, f"keypoint-moseq's {fmt.name} loader found no animal in the file")
    return [animal_of_key(k) for k in coord_d]


# --------------------------------------------------------------------------- the record


def _no_precheck(p: Path, path) -> FileFacts:
    return FileFacts()


@dataclass(frozen=True)
class KnownFailure:
    """A library failure kpms-flow can explain to a user.

    Attributes
    ----------
    pattern : str
        Regular expression searched in the library's text (``"<ExceptionType>: <message>"``).
    explain : callable
        ``explain(p) -> str``: the cause in the user's terms and what to do (it may read the
        file ``p``, e.g. for the version of the software that wrote it).
    """

    pattern: str
    explain: Callable[[Path], str]


@dataclass(frozen=True)
class PoseFormat:
    """One pose format: everything kpms-flow knows about it, in one place.

    Attributes
    ----------
    name : str
        The name in the sessions table (keypoint-moseq's, case-sensitive).
    extensions : tuple of str
        File extensions its loader reads (lower case, with the dot).
    sniff : callable or None
        ``sniff(p) -> bool``: the file (or folder) identifies itself as this format. Called
        only for files with one of ``extensions`` (folders: only when ``reads_folders``).
        None: the content cannot tell (e.g. FreiPose ``.json``).
    precheck : callable
        ``precheck(p, path) -> FileFacts``: checks before keypoint-moseq's loader runs;
        raises :class:`InputError` for files the loader would mis-read or fail on.
    load : callable
        ``load(fmt, request) -> Loaded``; default: keypoint-moseq's loader after ``precheck``.
    list_animals : callable
        ``list_animals(fmt, p, path) -> list of str``; default: keypoint-moseq's loader's
        animal keys after ``precheck``.
    known_failures : tuple of KnownFailure
        Failures of keypoint-moseq's loader (or the libraries it calls) that are explained
        in the user's terms, the library's text kept on the line below.
    reads_folders : bool
        The path may be a folder (Annolid results); the common file checks (readable,
        extension, known non-pose file) are then left to the loader.
    read_by_keypoint_moseq : bool
        keypoint-moseq 0.8.1's ``load_keypoints`` reads this format.
    """

    name: str
    extensions: tuple[str, ...]
    sniff: Callable[[Path], bool] | None
    precheck: Callable[[Path, object], FileFacts] = _no_precheck
    load: Callable[[PoseFormat, LoadRequest], Loaded] = load_with_keypoint_moseq
    list_animals: Callable[[PoseFormat, Path, object], list[str]] = list_with_keypoint_moseq
    known_failures: tuple[KnownFailure, ...] = ()
    reads_folders: bool = False
    read_by_keypoint_moseq: bool = True
