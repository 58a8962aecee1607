"""Noise calibration without keypoint-moseq's notebook widget.

keypoint-moseq turns each keypoint's tracker confidence into a prior on its error with a
line fitted to ``log10(error + 1)`` against ``log10(confidence)`` (``error_estimator``:
slope, intercept). Its only way to get that line is a Jupyter widget
(``keypoint_moseq.calibration.noise_calibration``). This module fits the same line, the same
way, from labels users already have:

* keypoint-moseq's own ``error_annotations.csv`` (columns key, coordinate_index,
  video_frame_index, bodypart, x, y; ``keypoint_moseq.calibration.save_annotations``);
* DeepLabCut's labelled frames, ``labeled-data/<video>/CollectedData_<scorer>.h5`` or
  ``.csv`` (frame index from the image name, ``img<frame>.png``);
* SLEAP's user-labelled instances in a ``.slp`` (read with ``sleap_io``).

Labels are matched to sessions by video name (the sessions table's ``video`` column, else
the session name, else the pose file's name as DeepLabCut writes it, ``<video>DLC_...``)
and frame index; every frame of a session is a video frame (no ``video_frame_indexes``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .keypoints import InputError

ANNOTATION_COLUMNS = ["key", "coordinate_index", "video_frame_index", "bodypart", "x", "y"]
# keypoint-moseq's widget saves (and fits) only from 20 annotations on.
MIN_ANNOTATIONS = 20
ESTIMATOR_COLUMNS = ["slope", "intercept", "conf_threshold", "n_annotations"]


class CalibrationError(InputError):
    """Annotations that cannot calibrate the sessions (the message names file and cause)."""


@dataclass
class SessionTrack:
    """What calibration needs of one session: its video's names and tracked keypoints.

    Without ``coordinates`` (a catalog entry built from the sessions table) it only serves
    to match label files to sessions (:func:`annotated_sessions`).
    """

    session: str
    video_names: list[str]  # names a label file may give this session's video
    animal: str = ""
    pose_stem: str = ""  # the pose file's name without suffix (DeepLabCut: <video>DLC_...)
    coordinates: np.ndarray | None = None  # (frames, bodyparts, 2), NaN where missing
    confidences: np.ndarray | None = None  # (frames, bodyparts)
    bodyparts: list[str] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.coordinates.shape[0])


def catalog_entry(session: str, pose_path: str, video: str = "", animal: str = ""):
    """A session as the sessions table gives it (``path``, ``video``, ``animal``)."""
    video = "" if video is None or video != video else str(video)  # NaN: no video
    animal = "" if animal is None or animal != animal else str(animal)
    names = [Path(video).stem] if video else []
    return SessionTrack(
        session=session,
        video_names=names + [session],
        animal=animal,
        pose_stem=Path(str(pose_path)).stem,
    )


def session_track(kp, video: str = "") -> SessionTrack:
    """A :class:`SessionTrack` from a :class:`kpms_flow.keypoints.SessionKeypoints`.

    ``video`` is the sessions table's ``video`` entry (may be empty).
    """
    entry = catalog_entry(kp.session, kp.source_path, video, kp.animal)
    entry.coordinates = np.asarray(kp.coordinates, dtype=float)
    entry.confidences = np.asarray(kp.confidences, dtype=float)
    entry.bodyparts = list(kp.bodyparts)
    return entry


def sessions_for_video(video: str, tracks: dict[str, SessionTrack]) -> list[SessionTrack]:
    """Sessions recorded on ``video`` (a name without folder or suffix).

    By name first (the ``video`` column, else the session name); else the sessions whose
    pose file is named after the video as DeepLabCut names its outputs (``<video>DLC_``).
    """
    named = [t for t in tracks.values() if video in t.video_names]
    if named:
        return named
    return [t for t in tracks.values() if t.pose_stem.startswith(f"{video}DLC")]


def annotation_files(entries) -> list[Path]:
    """The annotation files that config key ``calibration.annotations`` names.

    A folder (a DeepLabCut project or its ``labeled-data``) stands for every
    ``CollectedData_*.h5`` under it (the ``.csv`` where no ``.h5`` of that name exists).
    """
    files = []
    for entry in entries:
        entry = Path(entry)
        if not entry.is_dir():
            files.append(entry)
            continue
        h5 = sorted(entry.rglob("CollectedData_*.h5"))
        csv = [p for p in sorted(entry.rglob("CollectedData_*.csv")) if not p.with_suffix(".h5").exists()]
        found = sorted(h5 + csv)
        if not found:
            raise CalibrationError(
                f"{entry}: no DeepLabCut CollectedData_*.h5/.csv under this folder "
                "(config key 'calibration.annotations')"
            )
        files.extend(found)
    return files


def annotated_sessions(paths, catalog: dict[str, SessionTrack]) -> list[str]:
    """Sessions the annotation files label (cheap: names only; the DAG needs them).

    Files or sessions that match nothing are left to :func:`read_annotations` to refuse.
    """
    names = set()
    for path in map(Path, paths):
        if path.name.startswith("CollectedData_"):
            # By its folder's name: the file may be made by a job (the demo's labels).
            names.update(t.session for t in sessions_for_video(path.parent.name, catalog))
        elif not path.exists():
            continue
        elif path.suffix == ".slp":
            import sleap_io as sio

            for video in sio.load_slp(str(path)).videos:
                stem = Path(str(video.filename)).stem
                names.update(t.session for t in sessions_for_video(stem, catalog))
        elif path.suffix == ".csv":
            try:
                keys = pd.read_csv(path, comment="#", usecols=["key"])["key"].astype(str)
            except (ValueError, pd.errors.ParserError):
                continue
            names.update(k for k in keys if k in catalog)
    return sorted(names)


# ------------------------------------------------------------------------------ readers
def read_annotations(path, tracks: dict[str, SessionTrack]) -> pd.DataFrame:
    """Annotations of one file, in keypoint-moseq's ``error_annotations.csv`` columns.

    Parameters
    ----------
    path : str or Path
        keypoint-moseq's ``error_annotations.csv``, a DeepLabCut ``CollectedData_*.h5`` /
        ``.csv``, or a SLEAP ``.slp``.
    tracks : dict
        Session name -> :class:`SessionTrack` of every session of the workflow.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ANNOTATION_COLUMNS`, checked by :func:`check_annotations`.
    """
    path = Path(path)
    if not path.exists():
        raise CalibrationError(f"{path}: annotation file not found")
    if path.suffix == ".slp":
        table = read_sleap_labels(path, tracks)
    elif path.name.startswith("CollectedData_") and path.suffix in (".h5", ".csv"):
        table = read_dlc_labels(path, tracks)
    elif path.suffix == ".csv":
        table = read_kpms_annotations(path)
    else:
        raise CalibrationError(
            f"{path}: not an annotation file (expected keypoint-moseq's error_annotations.csv, "
            "DeepLabCut's CollectedData_<scorer>.h5/.csv or a SLEAP .slp)"
        )
    check_annotations(table, tracks, path)
    return table


def read_kpms_annotations(path) -> pd.DataFrame:
    """keypoint-moseq's ``error_annotations.csv`` (``#`` lines are its column notes)."""
    try:
        table = pd.read_csv(path, comment="#")
    except (ValueError, pd.errors.ParserError) as error:
        raise CalibrationError(f"{path}: not a readable CSV ({error})") from None
    missing = [c for c in ANNOTATION_COLUMNS if c not in table.columns]
    if missing:
        raise CalibrationError(
            f"{path}: columns {missing} missing; keypoint-moseq's error_annotations.csv has "
            f"{ANNOTATION_COLUMNS}"
        )
    table = table[ANNOTATION_COLUMNS].copy()
    table["key"] = table["key"].astype(str)
    table["bodypart"] = table["bodypart"].astype(str)
    return table


_FRAME_NUMBER = re.compile(r"(\d+)\.[A-Za-z]+$")


def _dlc_frame_index(image: str, path) -> int:
    match = _FRAME_NUMBER.search(str(image))
    if match is None:
        raise CalibrationError(
            f"{path}: labelled image {image!r} has no frame number (DeepLabCut names them "
            "img<frame>.png)"
        )
    return int(match.group(1))


def _read_dlc_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".h5":
        try:
            return pd.read_hdf(path)
        except (OSError, KeyError, ValueError) as error:
            raise CalibrationError(f"{path}: not a DeepLabCut labels file ({error})") from None
    # CSV: 3 header rows (4 with 'individuals'), 1 index column (3 since DeepLabCut 2.2).
    lines = path.read_text().splitlines()[:5]
    first = [row.split(",") for row in lines]
    header_rows = sum(
        1 for row in first if row and row[0] in ("scorer", "individuals", "bodyparts", "coords")
    )
    if not header_rows or not first[0][0] == "scorer":
        raise CalibrationError(
            f"{path}: not a DeepLabCut labels CSV (its first row should start with 'scorer')"
        )
    index_cols = next((i for i, v in enumerate(first[0][1:], 1) if v), 1)
    return pd.read_csv(
        path, header=list(range(header_rows)), index_col=list(range(index_cols))
    )


def read_dlc_labels(path, tracks: dict[str, SessionTrack]) -> pd.DataFrame:
    """DeepLabCut's labelled frames of ``labeled-data/<video>/CollectedData_<scorer>``.

    Multi-animal files: each individual goes to the session of that video whose ``animal``
    is the individual's name (or to the video's only session when it has one).
    """
    path = Path(path)
    video = path.parent.name
    df = _read_dlc_table(path)
    levels = list(df.columns.names)
    if "bodyparts" not in levels or "coords" not in levels:
        raise CalibrationError(
            f"{path}: columns lack DeepLabCut's 'bodyparts' and 'coords' levels ({levels})"
        )
    # Each row names its image: ('labeled-data', video, 'img0012.png') or one path string.
    rows = []
    for entry in df.index:
        parts = list(entry) if isinstance(entry, tuple) else re.split(r"[\\/]", str(entry))
        if len(parts) >= 2 and parts[-2] != video:
            raise CalibrationError(
                f"{path}: labels from a different video: row {'/'.join(parts)!r} names video "
                f"{parts[-2]!r}, but the file is in labeled-data/{video}/"
            )
        rows.append(_dlc_frame_index(parts[-1], path))
    sessions = _labelled_sessions(video, tracks, path)
    individuals = [None]
    if "individuals" in levels:
        # 'single' holds multi-animal projects' unique bodyparts (no animal's).
        individuals = [
            i for i in df.columns.get_level_values("individuals").unique() if i != "single"
        ]
    out = []
    for individual in individuals:
        sub = df if individual is None else df.xs(individual, axis=1, level="individuals")
        session = _session_for_individual(sessions, individual, len(individuals), path)
        for bodypart in sub.columns.get_level_values("bodyparts").unique():
            xy = sub.xs(bodypart, axis=1, level="bodyparts")
            x = xy.xs("x", axis=1, level="coords").to_numpy(dtype=float).ravel()
            y = xy.xs("y", axis=1, level="coords").to_numpy(dtype=float).ravel()
            for frame, xi, yi in zip(rows, x, y):
                if np.isfinite(xi) and np.isfinite(yi):
                    out.append((session.session, frame, frame, str(bodypart), xi, yi))
    return pd.DataFrame(out, columns=ANNOTATION_COLUMNS)


def _labelled_sessions(video: str, tracks: dict, path) -> list:
    """The sessions recorded on a labelled video, or a clear error naming the label file."""
    sessions = sessions_for_video(video, tracks)
    if not sessions:
        raise CalibrationError(
            f"{path}: labels for unknown session: no session's video is named {video!r} "
            "(a session matches by the stem of its 'video' in the sessions table, its name, or "
            "its pose file's name <video>DLC_...)"
        )
    return sessions


def _session_for_individual(sessions, individual, n_individuals: int, path):
    matched = [s for s in sessions if individual is not None and s.animal == individual]
    if matched:
        return matched[0]
    if len(sessions) == 1 and n_individuals == 1:
        return sessions[0]
    raise CalibrationError(
        f"{path}: labels for unknown session: labelled animal {individual!r} of video "
        f"{sessions[0].video_names[0]!r} is not the 'animal' of one of its sessions "
        f"{[s.session for s in sessions]}"
    )


def read_sleap_labels(path, tracks: dict[str, SessionTrack]) -> pd.DataFrame:
    """SLEAP's user-labelled instances (predictions are left out: they are the tracker's).

    An instance goes to the session of its video whose ``animal`` is its track's name; on a
    video with one session, the frame's only instance (or, with several, the one nearest the
    session's tracked pose).
    """
    import sleap_io as sio

    path = Path(path)
    try:
        labels = sio.load_slp(str(path))
    except Exception as error:  # sleap_io raises many kinds on a bad file
        raise CalibrationError(f"{path}: not a readable SLEAP file ({error})") from None
    out = []
    for frame in labels.user_labeled_frames:
        video = Path(str(frame.video.filename)).stem
        sessions = _labelled_sessions(video, tracks, path)
        instances = list(frame.user_instances)
        for session in sessions:
            chosen = _sleap_instance(instances, session, int(frame.frame_idx))
            if chosen is None:
                continue
            names = chosen.skeleton.node_names
            for name, (x, y) in zip(names, np.asarray(chosen.numpy(), dtype=float)[:, :2]):
                if np.isfinite(x) and np.isfinite(y):
                    idx = int(frame.frame_idx)
                    out.append((session.session, idx, idx, str(name), x, y))
    return pd.DataFrame(out, columns=ANNOTATION_COLUMNS)


def _sleap_instance(instances, session: SessionTrack, frame: int):
    tracked = [i for i in instances if i.track is not None and i.track.name == session.animal]
    if tracked:
        return tracked[0]
    if len(instances) <= 1:
        return instances[0] if instances else None
    if not 0 <= frame < session.n_frames:
        return instances[0]  # check_annotations reports the frame

    def distance(instance):
        points = np.asarray(instance.numpy(), dtype=float)[:, :2]
        names = instance.skeleton.node_names
        pairs = [
            (points[j], session.coordinates[frame, session.bodyparts.index(n)])
            for j, n in enumerate(names)
            if n in session.bodyparts
        ]
        d = [np.linalg.norm(a - b) for a, b in pairs]
        return np.nanmedian(d) if d and np.isfinite(d).any() else np.inf

    return min(instances, key=distance)


# ----------------------------------------------------------------------------- checks
def check_annotations(table: pd.DataFrame, tracks: dict[str, SessionTrack], path) -> None:
    """Refuse annotations naming unknown sessions or bodyparts, or frames out of range."""
    unknown = sorted(set(table["key"]) - set(tracks))
    if unknown:
        raise CalibrationError(
            f"{path}: annotations for unknown sessions {unknown}: not in the sessions table"
        )
    for session, rows in table.groupby("key"):
        track = tracks[session]
        bad_parts = sorted(set(rows["bodypart"]) - set(track.bodyparts))
        if bad_parts:
            raise CalibrationError(
                f"{path}: unknown bodyparts {bad_parts} for session {session!r} "
                f"(it tracks {track.bodyparts})"
            )
        frames = rows["coordinate_index"].to_numpy()
        outside = frames[(frames < 0) | (frames >= track.n_frames)]
        if outside.size:
            raise CalibrationError(
                f"{path}: frames out of range for session {session!r}: "
                f"{sorted(set(outside.tolist()))[:10]} (it has frames 0..{track.n_frames - 1})"
            )


# ---------------------------------------------------------------------------- fitting
def annotation_errors(table: pd.DataFrame, tracks: dict[str, SessionTrack], conf_pseudocount):
    """``log10(confidence)`` and ``log10(error + 1)`` of each annotation, as the widget.

    keypoint-moseq's ``noise_calibration`` adds ``conf_pseudocount`` to the confidences
    before its widget takes ``log10`` of them. Annotations of points the tracker did not
    report (NaN) have no error and are left out.

    Returns
    -------
    log_conf, log_error : numpy.ndarray
        One value per usable annotation.
    used : numpy.ndarray of bool
        Which rows of ``table`` were usable.
    """
    log_conf, log_error, used = [], [], []
    for row in table.itertuples(index=False):
        track = tracks[row.key]
        k = track.bodyparts.index(row.bodypart)
        original = track.coordinates[int(row.coordinate_index), k, :2]
        annotated = np.array([row.x, row.y], dtype=float)
        error = np.log10(np.sqrt(np.sum((original - annotated) ** 2)) + 1)
        confidence = np.log10(track.confidences[int(row.coordinate_index), k] + conf_pseudocount)
        ok = bool(np.isfinite(error) and np.isfinite(confidence))
        used.append(ok)
        if ok:
            log_error.append(error)
            log_conf.append(confidence)
    return np.array(log_conf), np.array(log_error), np.array(used, dtype=bool)


def fit_error_estimator(log_conf, log_error) -> tuple[float, float]:
    """Slope and intercept as keypoint-moseq's widget fits them (``np.polyfit``, degree 1)."""
    slope, intercept = np.polyfit(log_conf, log_error, 1)
    return float(slope), float(intercept)


def calibrate(
    annotation_paths,
    tracks: dict[str, SessionTrack],
    conf_pseudocount: float,
    conf_threshold: float,
    min_annotations: int = MIN_ANNOTATIONS,
):
    """Read, check and fit every annotation file.

    Returns
    -------
    estimator : dict
        ``slope``, ``intercept``, ``conf_threshold`` (the config's, passed through as the
        widget does) and ``n_annotations`` (those used in the fit).
    annotations : pandas.DataFrame
        All annotations in keypoint-moseq's columns, with ``log10_confidence`` and
        ``log10_error`` (NaN where unusable) for the plot.
    """
    if not annotation_paths:
        raise CalibrationError("config key 'calibration.annotations' names no file")
    tables = []
    for path in annotation_paths:
        table = read_annotations(path, tracks)
        if table.empty:
            raise CalibrationError(f"{path}: no labelled points in the file")
        tables.append(table.assign(source=str(path)))
    annotations = pd.concat(tables, ignore_index=True)
    log_conf, log_error, used = annotation_errors(annotations, tracks, conf_pseudocount)
    if used.sum() < min_annotations:
        sources = ", ".join(str(p) for p in annotation_paths)
        raise CalibrationError(
            f"{sources}: too few annotations: {int(used.sum())} usable of {len(annotations)} "
            f"(at least {min_annotations}; keypoint-moseq's widget also needs 20; annotations "
            "of points the tracker did not report are left out)"
        )
    slope, intercept = fit_error_estimator(log_conf, log_error)
    annotations["log10_confidence"] = np.nan
    annotations["log10_error"] = np.nan
    annotations.loc[used, "log10_confidence"] = log_conf
    annotations.loc[used, "log10_error"] = log_error
    estimator = {
        "slope": slope,
        "intercept": intercept,
        "conf_threshold": float(conf_threshold),
        "n_annotations": int(used.sum()),
    }
    return estimator, annotations


def read_error_estimator(path) -> dict:
    """``{"slope", "intercept"}`` from a ``noise_calibration`` TSV (what init_model takes)."""
    table = pd.read_csv(path, sep="\t")
    missing = [c for c in ESTIMATOR_COLUMNS if c not in table.columns]
    if missing or len(table) != 1:
        raise CalibrationError(
            f"{path}: not an error estimator table (one row with columns {ESTIMATOR_COLUMNS})"
        )
    row = table.iloc[0]
    return {"slope": float(row["slope"]), "intercept": float(row["intercept"])}


def calibration_figure(annotations: pd.DataFrame, estimator: dict):
    """Error against confidence (log-log, as fitted) with the fitted line."""
    import matplotlib.pyplot as plt

    used = annotations.dropna(subset=["log10_confidence", "log10_error"])
    fig, ax = plt.subplots(figsize=(5, 4))
    for session, rows in used.groupby("key"):
        ax.scatter(rows["log10_confidence"], rows["log10_error"], s=10, alpha=0.6, label=session)
    xs = np.linspace(used["log10_confidence"].min(), used["log10_confidence"].max(), 50)
    ax.plot(
        xs,
        estimator["slope"] * xs + estimator["intercept"],
        color="black",
        label=f"fit: slope {estimator['slope']:.3f}, intercept {estimator['intercept']:.3f}",
    )
    ax.set_xlabel("log10 confidence")
    ax.set_ylabel("log10 (error px + 1)")
    ax.set_title(f"Noise calibration ({estimator['n_annotations']} annotations)")
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
