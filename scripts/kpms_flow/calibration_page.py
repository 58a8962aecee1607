"""A labelling page for noise calibration that needs no Jupyter: one self-contained HTML file.

Frames are sampled the way keypoint-moseq's widget samples them (its
``sample_error_frames``: enriched for low confidence, here seeded), cut from the session
videos with its video reader (vidio's ``OpenCVReader``) and embedded as JPEG. The page
works from ``file://`` (no server): it shows each frame with the tracker's point, a click
marks the true position of the asked bodypart, Prev/Next (or the arrow keys) move between
frames, and "Save CSV" downloads keypoint-moseq's ``error_annotations.csv``
(``kpms_flow.calibration`` reads it). Progress is kept in the browser's local storage.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from .atomic import write_text
from .calibration import CalibrationError


def sample_items(confidences: dict, bodyparts, use_bodyparts, seed: int, num_samples: int = 100,
                 conf_pseudocount: float = 1e-3) -> list[tuple[str, int, str]]:
    """``(session, frame, bodypart)`` to label, by keypoint-moseq's ``sample_error_frames``.

    It draws from NumPy's global generator: seeded here, and the caller's state restored.
    """
    from keypoint_moseq.calibration import sample_error_frames

    state = np.random.get_state()
    np.random.seed(int(seed))
    try:
        keys = sample_error_frames(
            confidences, list(bodyparts), list(use_bodyparts), num_samples=num_samples,
            conf_pseudocount=conf_pseudocount,
        )
    finally:
        np.random.set_state(state)
    return [(str(k), int(t), str(b)) for k, t, b in keys]


def read_frames(items, videos: dict[str, str]) -> dict[tuple, np.ndarray]:
    """The video frame (RGB) of each item, with keypoint-moseq's reader."""
    from vidio.read import OpenCVReader

    readers = {}
    frames = {}
    for item in items:
        session, frame, _ = item
        if session not in readers:
            video = videos.get(session)
            if not video or not Path(video).exists():
                raise CalibrationError(
                    f"session {session!r}: no video to cut labelling frames from "
                    f"({video or 'the sessions table has no video for it'})"
                )
            readers[session] = OpenCVReader(str(video))
        reader = readers[session]
        if frame >= len(reader):
            raise CalibrationError(
                f"{videos[session]}: frame {frame} is past the video's end ({len(reader)} "
                f"frames): is it the video of session {session!r}?"
            )
        frames[item] = reader[frame]
    return frames


def _jpeg_data_uri(rgb: np.ndarray, quality: int = 90) -> str:
    import cv2

    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def write_page(path, items, frames: dict, tracked: dict, title: str) -> None:
    """Write the page (atomically).

    Parameters
    ----------
    items : list of (session, frame, bodypart)
        In the order shown.
    frames : dict
        Item -> RGB image.
    tracked : dict
        Item -> the tracker's (x, y) in image pixels (NaN where it reported none).
    title : str
        Shown on the page; also keys the saved progress in the browser.
    """
    records = []
    for item in items:
        x, y = (float(v) for v in tracked[item])
        records.append(
            {
                "key": item[0],
                "frame": item[1],
                "bodypart": item[2],
                "tracked": None if not (np.isfinite(x) and np.isfinite(y)) else [x, y],
                "image": _jpeg_data_uri(frames[item]),
            }
        )
    # "</" cannot end the script early inside JSON: escape it.
    data = json.dumps(records).replace("</", "<\\/")
    page = PAGE.replace("@TITLE@", html.escape(title)).replace("@ITEMS@", data)
    page = page.replace("@TITLE_JSON@", json.dumps(title))
    write_text(path, page)


PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@TITLE@</title>
<style>
 body { font-family: sans-serif; margin: 1em; }
 #bar button { font-size: 1em; margin-right: .4em; }
 #info { margin: .5em 0; }
 canvas { border: 1px solid #888; cursor: crosshair; max-width: 100%; }
 .hint { color: #555; font-size: .9em; }
</style>
</head>
<body>
<h1>@TITLE@</h1>
<p class="hint">Click the <b>true</b> position of the named bodypart (the yellow circle is the
tracker's point). Prev/Next or the arrow keys move between frames; click again to correct.
Save CSV writes keypoint-moseq's <code>error_annotations.csv</code>: name it in
<code>calibration.annotations</code> (at least 20 labels).</p>
<div id="bar">
 <button id="prev">&larr; Prev</button><button id="next">Next &rarr;</button>
 <button id="save">Save CSV</button>
</div>
<div id="info"></div>
<canvas id="view"></canvas>
<script>
"use strict";
const ITEMS = @ITEMS@;
const STORE = "kpms-flow-calibration:" + @TITLE_JSON@;
const labels = JSON.parse(localStorage.getItem(STORE) || "{}");  // item index -> [x, y]
const canvas = document.getElementById("view");
const context = canvas.getContext("2d");
let current = 0;
const images = ITEMS.map(item => { const im = new Image(); im.src = item.image; return im; });

function draw() {
  const item = ITEMS[current], image = images[current];
  if (!image.complete) { image.onload = draw; return; }
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  context.drawImage(image, 0, 0);
  const r = Math.max(4, image.naturalWidth / 100);
  if (item.tracked) {
    context.strokeStyle = "yellow"; context.lineWidth = 2;
    context.beginPath(); context.arc(item.tracked[0], item.tracked[1], r, 0, 2 * Math.PI);
    context.stroke();
  }
  const mark = labels[current];
  if (mark) {
    context.strokeStyle = "red"; context.lineWidth = 2; context.beginPath();
    context.moveTo(mark[0] - r, mark[1] - r); context.lineTo(mark[0] + r, mark[1] + r);
    context.moveTo(mark[0] + r, mark[1] - r); context.lineTo(mark[0] - r, mark[1] + r);
    context.stroke();
  }
  const done = Object.keys(labels).length;
  document.getElementById("info").textContent =
    `Frame ${current + 1} of ${ITEMS.length} | session ${item.key}, video frame ${item.frame} | ` +
    `bodypart: ${item.bodypart}` + (item.tracked ? "" : " (the tracker reported none)") +
    ` | labelled: ${done}` + (done < 20 ? ` (${20 - done} more needed)` : "");
}

function go(index) { current = Math.min(ITEMS.length - 1, Math.max(0, index)); draw(); }

canvas.addEventListener("click", event => {
  // Page pixels -> image pixels (the canvas may be shown scaled).
  const box = canvas.getBoundingClientRect();
  const x = (event.clientX - box.left) * canvas.width / box.width;
  const y = (event.clientY - box.top) * canvas.height / box.height;
  labels[current] = [x, y];
  localStorage.setItem(STORE, JSON.stringify(labels));
  draw();
});

function csvText() {
  // keypoint-moseq's save_annotations format; every frame of a session is a video frame.
  const lines = [
    "# key: recording name",
    "# coordinate_index: index of the keypoint data in coordinates (same as video_frame_index if every frame was used)",
    "# video_frame_index: frame number in the video",
    "# bodypart: name of the bodypart that was annotated",
    "# x: x-coordinate of the annotated keypoint",
    "# y: y-coordinate of the annotated keypoint",
    "key,coordinate_index,video_frame_index,bodypart,x,y",
  ];
  Object.keys(labels).map(Number).sort((a, b) => a - b).forEach(i => {
    const item = ITEMS[i], mark = labels[i];
    lines.push(`${item.key},${item.frame},${item.frame},${item.bodypart},${mark[0]},${mark[1]}`);
  });
  return lines.join("\n") + "\n";
}

function save() {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([csvText()], {type: "text/csv"}));
  link.download = "error_annotations.csv";
  document.body.appendChild(link); link.click(); link.remove();
}

document.getElementById("prev").onclick = () => go(current - 1);
document.getElementById("next").onclick = () => go(current + 1);
document.getElementById("save").onclick = save;
document.addEventListener("keydown", event => {
  if (event.key === "ArrowLeft") go(current - 1);
  if (event.key === "ArrowRight") go(current + 1);
});
window.kpmsCalibration = {csvText, go, count: ITEMS.length, labels};
go(0);
</script>
</body>
</html>
"""
