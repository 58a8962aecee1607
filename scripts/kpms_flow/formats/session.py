"""One session from one pose file: the steps every format shares, around its own loader.

:func:`load_session` checks the path, runs the format's loader (its record in
:mod:`kpms_flow.formats.registry`), checks the arrays and chooses the frame rate;
:func:`validate_session` applies the config's requirements.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..keypoints import InputError, SessionKeypoints, reorder_bodyparts
from .base import LoadRequest, PoseFormat, fail
from .nonpose import refuse_non_pose
from .registry import get_format
from .video import clean_video, video_info


def _check_readable(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise fail(path, "file not found")
    if not p.is_file():
        raise fail(path, "is not a regular file (a directory?)")
    try:
        with open(p, "rb") as handle:  # read-only; proves we can actually read it
            handle.read(1)
    except OSError as err:
        raise fail(path, f"cannot be read ({err.strerror or err})") from err
    return p


def _open_pose_file(fmt: PoseFormat, path) -> Path:
    """The checks before any loader: readable file, not a known non-pose file, right extension."""
    p = _check_readable(path)
    refuse_non_pose(p, path)
    if p.suffix.lower() not in fmt.extensions:
        raise fail(
            path,
            f"extension '{p.suffix}' is not read by keypoint-moseq's {fmt.name} loader "
            f"(expects {', '.join(fmt.extensions)})",
        )
    return p


def _target(fmt: PoseFormat, path) -> Path:
    # Formats that read folders (Annolid) check their path themselves.
    return Path(path) if fmt.reads_folders else _open_pose_file(fmt, path)


def _clean_fps(fps, path) -> float | None:
    if fps is None:
        return None
    try:
        value = float(fps)
    except (TypeError, ValueError) as err:
        raise fail(path, f"fps {fps!r} is not a number") from err
    if math.isnan(value):
        return None  # NaN is how the sessions table spells "not given"
    if not math.isfinite(value) or value <= 0:
        raise fail(path, f"fps must be a positive number, got {fps!r}")
    return value


def list_animals(path, format: str) -> list[str]:
    """List the animals (individuals, tracks) in one pose file.

    Parameters
    ----------
    path : path-like
        The pose file (for ``annolid``: the results folder or its ``.ndjson`` store).
    format : str
        One of :data:`~kpms_flow.formats.FORMATS`.

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
    fmt = get_format(format, path)
    return fmt.list_animals(fmt, _target(fmt, path), path)


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
        One of :data:`~kpms_flow.formats.FORMATS`.
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
        The message names the file and the cause (see :mod:`kpms_flow.formats` for the checks).
        Also raised when two of the file's, the video's and the table's frame rates disagree by
        more than 1 %, and when the pose has more frames than the video.
    """
    fmt = get_format(format, path)
    table_fps = _clean_fps(fps, path)
    video_path = clean_video(video)
    vinfo = video_info(video_path, path) if video_path else None
    request = LoadRequest(path=path, file=_target(fmt, path), animal=animal, bodyparts=bodyparts, video=vinfo)
    loaded = fmt.load(fmt, request)
    chosen, bodyparts, file_fps, extra = loaded.animal, loaded.bodyparts, loaded.file_fps, loaded.extra
    vinfo = loaded.video

    coords, confs = _check_arrays(loaded.coordinates, loaded.confidences, bodyparts, path)

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
                raise fail(
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
        source_sha256=loaded.sha256,
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
                raise fail(
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
        raise fail(path, f"{what} are not all numeric ({err})") from err


def _check_arrays(coords, confs, bodyparts, path) -> tuple[np.ndarray, np.ndarray]:
    """Shape/type checks on loader output; normalise missing values to the file contract."""
    coords = _as_float(coords, "coordinates", path)
    confs = _as_float(confs, "confidences", path)
    if coords.ndim != 3 or coords.shape[2] not in (2, 3):
        raise fail(path, f"coordinates have shape {coords.shape}, expected (frames, bodyparts, 2 or 3)")
    if coords.shape[0] < 1:
        raise fail(path, "has no frames")
    if len(bodyparts) != coords.shape[1]:
        raise fail(
            path,
            f"{len(bodyparts)} bodypart names ({', '.join(bodyparts)}) but the array has "
            f"{coords.shape[1]} keypoints",
        )
    if len(set(bodyparts)) != len(bodyparts):
        dup = sorted({b for b in bodyparts if bodyparts.count(b) > 1})
        raise fail(path, f"bodypart names repeat: {', '.join(dup)}")
    if confs.shape != coords.shape[:2]:
        raise fail(path, f"confidences have shape {confs.shape}, expected {coords.shape[:2]}")
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


def load_model_session(
    path,
    format: str,
    session: str,
    *,
    bodyparts=None,
    use_bodyparts=None,
    required_bodyparts=(),
    min_frames: int = 1,
    **source,
) -> SessionKeypoints:
    """One session as rule prepare_session takes it: loaded (:func:`load_session`), in the
    configured bodypart order, checked (:func:`validate_session`).

    Parameters
    ----------
    path, format, session
        As :func:`load_session`.
    bodyparts : list of str, optional
        The configured bodyparts and their order (config key ``bodyparts``).
    use_bodyparts : list of str, optional
        The bodyparts the model uses (config key ``use_bodyparts``); with them, a session may
        lack configured bodyparts the model does not use.
    required_bodyparts : iterable of str
        Bodyparts every session must have (``use_bodyparts`` and the anatomy keys).
    min_frames : int, default 1
        Config key ``min_frames``.
    **source
        ``animal``, ``fps``, ``video``: passed to :func:`load_session`.

    Returns
    -------
    SessionKeypoints

    Raises
    ------
    InputError
        The file cannot make a session; the message starts with the file's path.
    """
    kp = load_session(path, format, session=session, bodyparts=bodyparts, **source)
    kp = reorder_bodyparts(kp, bodyparts, required=required_bodyparts if use_bodyparts else None)
    return validate_session(
        kp, required_bodyparts=required_bodyparts, min_frames=min_frames, used_bodyparts=use_bodyparts or None
    )
