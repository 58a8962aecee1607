"""A session's video: its frame rate and frame count, as OpenCV reads them."""

from __future__ import annotations

import math
from pathlib import Path

from .base import VideoInfo, fail


def clean_video(video) -> str | None:
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
        raise fail(where, f"video {video} not found (the sessions table's 'video' column)")
    capture = cv2.VideoCapture(str(v))
    try:
        if not capture.isOpened():
            raise fail(where, f"video {video} cannot be opened by OpenCV (not a video, or an unsupported codec)")
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return VideoInfo(
        path=str(video),
        fps=fps if math.isfinite(fps) and fps > 0 else None,
        n_frames=int(count) if math.isfinite(count) and count > 0 else None,
    )
