"""Synthetic videos drawn from keypoints (the demo's stand-in for camera footage)."""

from __future__ import annotations

import os

import numpy as np

from .atomic import atomic_path


def write_pose_video(
    path,
    coordinates: np.ndarray,
    edges,
    size: tuple[int, int],
    fps: float,
) -> None:
    """Draw a pose per frame (body as thick lines, keypoints as dots) into an MP4 file.

    Parameters
    ----------
    path : path-like
        Output file (``.mp4``, MPEG-4 part 2 through OpenCV), written atomically.
    coordinates : ndarray of shape (n_frames, n_keypoints, 2)
        Pixel coordinates; frames or keypoints with NaN are left out of that frame.
    edges : list of (int, int)
        Keypoint index pairs joined by the body lines.
    size : (width, height)
        Frame size in pixels; coordinates are in this frame (row 0 at the top).
    fps : float
        Frame rate written into the file.
    """
    import cv2

    width, height = size
    shift = 4  # sub-pixel drawing: OpenCV takes coordinates x 2**shift
    scaled = np.round(np.nan_to_num(coordinates, nan=-1e4) * 2**shift).astype(np.int64)
    ok = np.isfinite(coordinates).all(axis=-1)
    body_width = max(2, round(0.025 * min(width, height)))
    radius = max(1, body_width // 3) << shift
    with atomic_path(path) as tmp:
        # OpenCV picks the container from the extension: write *.mp4, then rename.
        mp4 = tmp.with_name(tmp.name + ".mp4")
        writer = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        try:
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {path}")
            for points, seen in zip(scaled, ok):
                frame = np.full((height, width, 3), 30, np.uint8)
                for a, b in edges:
                    if seen[a] and seen[b]:
                        cv2.line(frame, tuple(points[a]), tuple(points[b]), (170, 170, 170),
                                 body_width, cv2.LINE_AA, shift)
                for point, visible in zip(points, seen):
                    if visible:
                        cv2.circle(frame, tuple(point), radius, (60, 140, 255), -1,
                                   cv2.LINE_AA, shift)
                writer.write(frame)
            writer.release()
            os.replace(mp4, tmp)
        finally:
            writer.release()
            mp4.unlink(missing_ok=True)
