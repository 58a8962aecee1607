"""The normalized per-session keypoint file that every later stage reads.

One HDF5 file per session::

    coordinates   float64 (frames, bodyparts, dims)   NaN where missing
    confidences   float64 (frames, bodyparts)         0 where missing
    bodyparts     utf-8 strings (bodyparts,)
    attrs: session, format, source_path, source_sha256, animal, fps, fps_source
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_path


class InputError(ValueError):
    """Bad user input (a pose file, the sessions table or the config).

    The message always names the offending file or config key and the cause.
    """


@dataclass
class SessionKeypoints:
    """Keypoints of one session (one animal in one recording)."""

    session: str
    coordinates: np.ndarray  # (frames, bodyparts, dims)
    confidences: np.ndarray  # (frames, bodyparts)
    bodyparts: list[str]
    source_path: str
    source_sha256: str
    format: str
    animal: str = ""
    fps: float | None = None
    fps_source: str = ""
    extra_attrs: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.coordinates.shape[0])

    @property
    def n_dims(self) -> int:
        return int(self.coordinates.shape[2])


def sha256_of_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hash a file without loading it whole (pose files can be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def write_session(path: str | Path, kp: SessionKeypoints, extra: dict | None = None) -> None:
    """Write a session atomically. ``extra`` maps dataset names to arrays (e.g. masks)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("coordinates", data=np.asarray(kp.coordinates, dtype=np.float64))
            f.create_dataset("confidences", data=np.asarray(kp.confidences, dtype=np.float64))
            f.create_dataset("bodyparts", data=np.array(kp.bodyparts, dtype=h5py.string_dtype()))
            for name, array in (extra or {}).items():
                f.create_dataset(name, data=array)
            f.attrs["session"] = kp.session
            f.attrs["format"] = kp.format
            f.attrs["source_path"] = str(kp.source_path)
            f.attrs["source_sha256"] = kp.source_sha256
            f.attrs["animal"] = kp.animal or ""
            f.attrs["fps"] = float("nan") if kp.fps is None else float(kp.fps)
            f.attrs["fps_source"] = kp.fps_source or ""
            for key, value in kp.extra_attrs.items():
                f.attrs[key] = value


def read_session(path: str | Path) -> SessionKeypoints:
    """Read a file written by :func:`write_session`."""
    with h5py.File(path, "r") as f:
        fps = float(f.attrs["fps"])
        known = {"session", "format", "source_path", "source_sha256", "animal", "fps", "fps_source"}
        return SessionKeypoints(
            session=str(f.attrs["session"]),
            coordinates=f["coordinates"][()],
            confidences=f["confidences"][()],
            bodyparts=[b.decode() if isinstance(b, bytes) else str(b) for b in f["bodyparts"][()]],
            source_path=str(f.attrs["source_path"]),
            source_sha256=str(f.attrs["source_sha256"]),
            format=str(f.attrs["format"]),
            animal=str(f.attrs["animal"]),
            fps=None if math.isnan(fps) else fps,
            fps_source=str(f.attrs["fps_source"]),
            extra_attrs={k: f.attrs[k] for k in f.attrs if k not in known},
        )


def reorder_bodyparts(kp: SessionKeypoints, bodyparts, required=None) -> SessionKeypoints:
    """Put the bodyparts in the configured order (config key ``bodyparts``).

    Parameters
    ----------
    kp : SessionKeypoints
        The session as loaded.
    bodyparts : list of str or None
        The configured order; None or empty leaves ``kp`` unchanged. The file's other
        bodyparts are left out.
    required : iterable of str, optional
        The bodyparts the model uses: a session lacking one of them is refused; configured
        bodyparts outside it that the file lacks are left out. None: all of ``bodyparts``
        are required.

    Returns
    -------
    SessionKeypoints
        The configured bodyparts the file has, in the configured order.
    """
    from dataclasses import replace

    if not bodyparts:
        return kp
    required = list(bodyparts) if required is None else list(required)
    missing = [b for b in bodyparts if b not in kp.bodyparts]
    lacking = [b for b in missing if b in required]
    if lacking:
        raise InputError(
            f"{kp.source_path}: bodyparts {lacking} from config key 'bodyparts' are not in "
            f"the file; the file has {list(kp.bodyparts)}"
        )
    present = [b for b in bodyparts if b in kp.bodyparts]
    order = [list(kp.bodyparts).index(b) for b in present]
    return replace(
        kp,
        coordinates=kp.coordinates[:, order],
        confidences=kp.confidences[:, order],
        bodyparts=present,
    )


def select_bodyparts(kp: SessionKeypoints, use_bodyparts) -> tuple[SessionKeypoints, list[str]]:
    """Keep only the bodyparts the model uses (config key ``use_bodyparts``).

    Sessions may track points the model does not use (an LED, an implant, arena corners),
    different ones per session; only the used bodyparts must be in every session.

    Parameters
    ----------
    kp : SessionKeypoints
        The session.
    use_bodyparts : iterable of str or None
        The bodyparts the model uses; None or empty: all of the session's.

    Returns
    -------
    tuple
        The session with the used bodyparts in the session's order, and the names left out.

    Raises
    ------
    InputError
        The session lacks a used bodypart (the message names the file and the bodyparts).
    """
    from dataclasses import replace

    if not use_bodyparts:
        return kp, []
    use = list(use_bodyparts)
    missing = [b for b in use if b not in kp.bodyparts]
    if missing:
        raise InputError(
            f"{kp.source_path} (session {kp.session!r}): lacks bodyparts {missing} named in "
            f"config key 'use_bodyparts'; the session has {list(kp.bodyparts)}"
        )
    keep = [i for i, b in enumerate(kp.bodyparts) if b in use]
    dropped = [b for b in kp.bodyparts if b not in use]
    if not dropped:
        return kp, []
    return (
        replace(
            kp,
            coordinates=kp.coordinates[:, keep],
            confidences=kp.confidences[:, keep],
            bodyparts=[kp.bodyparts[i] for i in keep],
        ),
        dropped,
    )
