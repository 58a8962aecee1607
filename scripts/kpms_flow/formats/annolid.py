"""Annolid results folders as keypoint sessions (plain ``json``; Annolid is not imported).

Annolid writes one results folder per video, named after the video::

    <video>/<video>_annotations.ndjson   the annotation store: one JSON record per frame
                                         ({"frame": N, "shapes": [...], ...}); appended to,
                                         so a later line for the same frame replaces earlier ones
    <video>/<video>_000000012.json       optional per-frame LabelMe files; a full file overrides
                                         the store's record for that frame, a *stub* (a file
                                         with an ``annotation_store`` key and no shapes) only
                                         points back to the store
    <video>_tracking.csv, _tracked.csv   derived per-instance tables (beside or inside the
                                         folder); not read: they drop visibility and hand labels

Rules applied to every frame record (see ``docs/formats.md``):

* only ``shape_type == "point"`` shapes are keypoints (polygons, boxes, masks are ignored);
* bodypart: ``display_label``, else ``label``;
* animal: ``instance_label``, else ``group_id``, else ``instance_id`` (``""`` when none, a
  single-animal file);
* confidence: ``score`` (top level, or legacy ``flags.score``); a point without a score is a
  hand label (1.0); ``visible: false`` gives 0 (the position is kept);
* the same bodypart twice for one animal in one frame (multi-peak output) keeps the higher
  confidence;
* frames without a record and points not in a record are NaN with confidence 0;
* frame count: from the video when one is known, else the last frame with a record + 1;
* bodypart order: the given list (config ``bodyparts``; names not in it are refused), else the
  order of first appearance in the file (frame order, then shape order).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..keypoints import InputError
from .base import Loaded, LoadRequest, PoseFormat, fail
from .video import video_info

FORMAT = "annolid"
STORE_SUFFIX = "_annotations.ndjson"
# Annolid's per-frame LabelMe file names: <video>_%09d.json
_FRAME_JSON = re.compile(r"^(?P<video>.+)_(?P<frame>\d{9})\.json$", re.IGNORECASE)
# Annolid's derived CSV tables (not read; the message points to the results folder instead).
_DERIVED_CSV = re.compile(r"^(?P<video>.+)_(?P<kind>tracking|tracked)\.csv$", re.IGNORECASE)
# Video files looked for beside a results folder (<parent>/<video>.<ext>) or inside it.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm")


# --------------------------------------------------------------------------- finding the files


@dataclass
class AnnolidSource:
    """The files of one Annolid results folder (one video)."""

    path: str  # as given (a folder or an .ndjson file)
    folder: Path  # the results folder
    video_stem: str  # <video> of <video>_annotations.ndjson / <video>_%09d.json
    store: Path | None  # the annotation store, if any
    frame_files: dict[int, Path] = field(default_factory=dict)  # frame -> per-frame JSON

    def files(self) -> list[Path]:
        """Every file read, store first, then per-frame JSON by frame."""
        return ([self.store] if self.store else []) + [self.frame_files[k] for k in sorted(self.frame_files)]


def derived_csv_kind(path) -> str | None:
    """``"tracking"``/``"tracked"`` for Annolid's derived CSV tables (by name or header), else None."""
    p = Path(path)
    if p.suffix.lower() != ".csv":
        return None
    match = _DERIVED_CSV.match(p.name)
    try:
        with open(p, encoding="utf-8", errors="replace") as handle:
            header = [c.strip() for c in handle.readline().split(",")]
    except OSError:
        return match.group("kind").lower() if match else None
    if header[:1] == ["frame_number"] and "instance_name" in header:
        if "class_score" in header:
            return "tracking"
        return "tracked"
    return None


def _frame_files(folder: Path, video_stem: str | None) -> dict[str, dict[int, Path]]:
    """Per-frame JSON files in ``folder``, grouped by video stem."""
    groups: dict[str, dict[int, Path]] = {}
    for f in sorted(folder.iterdir()):
        match = _FRAME_JSON.match(f.name)
        if not match or not f.is_file() or f.name.startswith("."):
            continue
        stem = match.group("video")
        if video_stem is not None and stem != video_stem:
            continue
        groups.setdefault(stem, {})[int(match.group("frame"))] = f
    return groups


def _stores_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.glob("*" + STORE_SUFFIX) if f.is_file() and not f.name.startswith("."))


def find_source(path) -> AnnolidSource:
    """Resolve an Annolid results folder or annotation-store file to its files.

    Parameters
    ----------
    path : path-like
        The results folder (holding ``<video>_annotations.ndjson`` and/or ``<video>_%09d.json``)
        or the ``.ndjson`` store itself.

    Raises
    ------
    InputError
        Missing path, Annolid's derived CSVs (pointing to the folder to use instead), a folder
        holding several videos' stores, or no Annolid annotations at all.
    """
    p = Path(path)
    if not p.exists():
        raise fail(path, "not found (an Annolid results folder or <video>_annotations.ndjson)")
    if p.is_file():
        kind = derived_csv_kind(p)
        if kind is not None:
            raise fail(path, _derived_csv_message(p, kind))
        if p.suffix.lower() == ".ndjson":
            stem = p.name[: -len(STORE_SUFFIX)] if p.name.endswith(STORE_SUFFIX) else p.stem
            frames = _frame_files(p.parent, stem).get(stem, {})
            return AnnolidSource(str(path), p.parent, stem, p, frames)
        if _FRAME_JSON.match(p.name):
            raise fail(
                path,
                "is one Annolid per-frame LabelMe file; the annolid format reads a whole video: "
                f"give its results folder {p.parent}",
            )
        raise fail(
            path,
            "is not an Annolid results folder or annotation store (<video>_annotations.ndjson)",
        )
    if not p.is_dir():
        raise fail(path, "is neither a file nor a folder")

    stores = _stores_in(p)
    if len(stores) > 1:
        names = ", ".join(s.name for s in stores)
        raise fail(
            path,
            f"holds {len(stores)} Annolid annotation stores ({names}); give the .ndjson file of "
            "one video as the path",
        )
    if stores:
        store = stores[0]
        stem = store.name[: -len(STORE_SUFFIX)]
        frames = _frame_files(p, stem).get(stem, {})
        return AnnolidSource(str(path), p, stem, store, frames)
    groups = _frame_files(p, None)
    if len(groups) > 1:
        raise fail(
            path,
            f"holds per-frame Annolid JSON of {len(groups)} videos ({', '.join(sorted(groups))}); "
            "keep one video per results folder",
        )
    if groups:
        stem, frames = next(iter(groups.items()))
        return AnnolidSource(str(path), p, stem, None, frames)
    hint = ""
    below = find_results(p)
    if below:
        hint = "; results folders below it: " + ", ".join(str(b) for b in below[:5])
    derived = sorted(f.name for f in p.glob("*.csv") if derived_csv_kind(f))
    if derived and not below:
        hint = f"; it holds only Annolid's derived CSV ({', '.join(derived)}), which is not read"
    raise fail(
        path,
        f"holds no Annolid annotations (no *{STORE_SUFFIX} and no <video>_%09d.json){hint}",
    )


def _derived_csv_message(p: Path, kind: str) -> str:
    match = _DERIVED_CSV.match(p.name)
    stem = match.group("video") if match else None
    candidates = []
    if stem:
        for folder in (p.parent / stem, p.parent):
            if (folder / f"{stem}{STORE_SUFFIX}").is_file() or _frame_files(folder, stem).get(stem):
                candidates.append(folder)
                break
    what = (
        "per-instance tracking table (frame_number, instance_name, class_score, ...)"
        if kind == "tracking"
        else "tracked-centroid table (frame_number, instance_name, cx, cy, no scores)"
    )
    use = (
        f"use its results folder {candidates[0]} (format annolid) instead"
        if candidates
        else "use the video's Annolid results folder (<video>/<video>_annotations.ndjson) instead"
    )
    return (
        f"is Annolid's derived {what}; it drops the visibility flags and hand labels and its "
        f"instance names are free text, so kpms-flow does not read it: {use}"
    )


def find_results(folder) -> list[Path]:
    """Annolid sources under ``folder`` (recursive), for building a sessions table.

    A folder holding one store (or per-frame JSON of one video) is listed as the folder; a
    folder holding stores of several videos lists each ``.ndjson`` file.
    """
    root = Path(folder)
    found: list[Path] = []
    for d in sorted([root, *(x for x in root.rglob("*") if x.is_dir())]):
        if any(part.startswith(".") for part in d.relative_to(root).parts):
            continue
        stores = _stores_in(d)
        if len(stores) > 1:
            found += stores
        elif stores or _frame_files(d, None):
            found.append(d)
    return found


def find_video(source: AnnolidSource) -> Path | None:
    """The video a results folder belongs to: ``<parent>/<video>.<ext>`` or inside the folder."""
    for folder in (source.folder.parent, source.folder):
        for ext in VIDEO_EXTENSIONS:
            for candidate in (folder / f"{source.video_stem}{ext}", folder / f"{source.video_stem}{ext.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def source_digest(source: AnnolidSource) -> str:
    """sha256 over the names and contents of every file read (the session's provenance)."""
    digest = hashlib.sha256()
    for f in source.files():
        digest.update(f.name.encode() + b"\0")
        with open(f, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


# --------------------------------------------------------------------------- reading the records


def _frame_from_image_path(image_path) -> int | None:
    if not image_path:
        return None
    last = Path(str(image_path)).stem.split("_")[-1]
    return int(last) if last.isdigit() else None


def _manual_seed_frames(source: AnnolidSource) -> set[int]:
    # Annolid's legacy stores (no "frame" key) skip frames labelled by hand (PNG + JSON pairs).
    seeds = set()
    prefix = f"{source.folder.name}_".lower()
    for png in source.folder.glob("*.png"):
        suffix = png.stem.lower()[len(prefix) :] if png.stem.lower().startswith(prefix) else ""
        if len(suffix) == 9 and suffix.isdigit() and png.with_suffix(".json").exists():
            seeds.add(int(suffix))
    return seeds


def _read_store(source: AnnolidSource) -> tuple[dict[int, dict], dict]:
    """Frame -> record (later lines win), and notes for provenance."""
    records: dict[int, dict] = {}
    notes = {"store_lines": 0, "store_truncated_last_line": 0}
    store = source.store
    try:
        lines = store.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise fail(store, f"cannot be read as UTF-8 text ({err})") from err
    content = [(i, line.strip()) for i, line in enumerate(lines, 1) if line.strip()]
    seeds = None
    legacy_index = 0
    for k, (lineno, text) in enumerate(content):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            if k == len(content) - 1 and lines and not text.endswith("}"):
                # A half-written last line (Annolid stopped while appending): skip, recorded.
                notes["store_truncated_last_line"] = lineno
                continue
            raise fail(store, f"line {lineno} is not valid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise fail(store, f"line {lineno} is not a JSON object (a frame record)")
        frame = record.get("frame")
        if frame is not None:
            try:
                frame = int(frame)
            except (TypeError, ValueError) as err:
                raise fail(store, f"line {lineno}: frame {record.get('frame')!r} is not an integer") from err
        else:
            frame = _frame_from_image_path(record.get("imagePath"))
            if frame is None:
                # Legacy store without frame numbers: row N is the Nth frame not labelled by hand.
                if seeds is None:
                    seeds = _manual_seed_frames(source)
                frame, seen = -1, -1
                while seen < legacy_index:
                    frame += 1
                    if frame not in seeds:
                        seen += 1
            legacy_index += 1
        if frame < 0:
            raise fail(store, f"line {lineno}: negative frame {frame}")
        records[frame] = record
        notes["store_lines"] += 1
    return records, notes


def _read_frames(source: AnnolidSource) -> tuple[dict[int, dict], dict[int, str], dict]:
    """All frame records (the store, overridden by full per-frame JSON files), their origin, notes."""
    records, notes = _read_store(source) if source.store else ({}, {"store_lines": 0, "store_truncated_last_line": 0})
    origin = {frame: "store" for frame in records}
    for frame, f in sorted(source.frame_files.items()):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise fail(f, f"is not a readable LabelMe JSON file ({err})") from err
        if not isinstance(data, dict):
            raise fail(f, "is not a LabelMe JSON object")
        if data.get("annotation_store"):
            # A stub: the frame's shapes live in the store.
            stub_frame = data.get("frame", frame)
            try:
                stub_frame = int(stub_frame)
            except (TypeError, ValueError):
                stub_frame = frame
            if stub_frame not in records:
                raise fail(
                    f,
                    f"is an Annolid stub pointing to frame {stub_frame} of "
                    f"{data.get('annotation_store')}, which has no record for that frame",
                )
            continue
        records[frame] = data
        origin[frame] = "json"
    return records, origin, notes


def _as_animal(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _shape_animal(shape: dict) -> str:
    for key in ("instance_label", "group_id", "instance_id"):
        value = shape.get(key)
        if value is not None and not isinstance(value, bool) and _as_animal(value) != "":
            return _as_animal(value)
    return ""


def _shape_score(shape: dict, where: str, path) -> float | None:
    score = shape.get("score")
    if score is None and isinstance(shape.get("flags"), dict):
        score = shape["flags"].get("score")  # legacy Annolid wrote it among the flags
    if score is None:
        return None
    try:
        value = float(score)
    except (TypeError, ValueError) as err:
        raise fail(path, f"{where}: score {score!r} is not a number") from err
    return value if math.isfinite(value) else 0.0


def _shape_xy(shape: dict, where: str, path) -> tuple[float, float] | None:
    points = shape.get("points")
    if not isinstance(points, list) or not points or not isinstance(points[0], (list, tuple)) or len(points[0]) < 2:
        raise fail(path, f"{where}: 'points' {points!r} is not [[x, y]]")
    x, y = points[0][0], points[0][1]
    if x is None or y is None:
        return None
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError) as err:
        raise fail(path, f"{where}: point {points[0]!r} is not numeric") from err
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return x, y


def _is_hidden(shape: dict) -> bool:
    visible = shape.get("visible", True)
    if isinstance(visible, str):
        return visible.strip().lower() in ("false", "0", "no")
    return visible is False or visible == 0


@dataclass
class AnnolidPoints:
    """Every keypoint of a results folder, all animals."""

    last_frame: int
    animals: list[str]  # first-seen order
    bodyparts: list[str]  # first-seen order (all animals)
    # (animal, frame, bodypart) -> (x, y, confidence, how): how is "score", "hand" or "hidden"
    points: dict[tuple[str, int, str], tuple[float, float, float, str]]
    counts: dict[str, int]
    mask_labels: dict[str, list[str]] = field(default_factory=dict)  # animal -> polygon labels


def read_points(source: AnnolidSource) -> AnnolidPoints:
    """Apply the module's rules to every frame record of ``source``."""
    records, origin, notes = _read_frames(source)
    path = source.path
    if not records:
        raise fail(path, "Annolid annotations hold no frame records")
    animals: dict[str, None] = {}
    bodyparts: dict[str, None] = {}
    points: dict[tuple[str, int, str], tuple[float, float, float, str]] = {}
    counts = {"point_shapes": 0, "other_shapes": 0, "duplicates": 0, **notes}
    mask_labels: dict[str, set[str]] = {}  # animal -> labels of its polygons/boxes (e.g. "mouse_a")
    for frame in sorted(records):
        record = records[frame]
        shapes = record.get("shapes") or []
        if not isinstance(shapes, list):
            raise fail(path, f"frame {frame}: 'shapes' is not a list")
        src = "the annotation store" if origin[frame] == "store" else source.frame_files[frame].name
        for i, shape in enumerate(shapes):
            where = f"frame {frame} ({src}) shape {i}"
            if not isinstance(shape, dict):
                raise fail(path, f"{where} is not a JSON object")
            if shape.get("shape_type") != "point":
                counts["other_shapes"] += 1
                owner = _shape_animal(shape)
                if owner and shape.get("label"):
                    mask_labels.setdefault(owner, set()).add(str(shape["label"]))
                continue
            bodypart = str(shape.get("display_label") or shape.get("label") or "").strip()
            if not bodypart:
                raise fail(path, f"{where}: point shape without a label")
            xy = _shape_xy(shape, where, path)
            counts["point_shapes"] += 1
            animal = _shape_animal(shape)
            animals.setdefault(animal, None)
            bodyparts.setdefault(bodypart, None)
            if xy is None:
                continue
            score = _shape_score(shape, where, path)
            conf, how = (1.0, "hand") if score is None else (score, "score")
            if _is_hidden(shape):
                conf, how = 0.0, "hidden"
            key = (animal, frame, bodypart)
            if key in points:
                counts["duplicates"] += 1
                if conf <= points[key][2]:
                    continue  # the same bodypart twice (multi-peak): keep the higher confidence
            points[key] = (xy[0], xy[1], conf, how)
    if not counts["point_shapes"]:
        raise fail(
            path,
            f"Annolid annotations hold no point shapes (keypoints) in {len(records)} frame "
            f"records ({counts['other_shapes']} other shapes: polygons, boxes, masks are not keypoints)",
        )
    names = list(animals)
    if "" in animals and len(names) > 1:
        unnamed = sum(1 for (a, _, _) in points if a == "")
        raise fail(
            path,
            f"{unnamed} points have no instance_label/group_id/instance_id while others belong to "
            f"animals {', '.join(repr(n) for n in names if n)}; cannot tell whose they are",
        )
    return AnnolidPoints(
        last_frame=max(records),
        animals=names,
        bodyparts=list(bodyparts),
        points=points,
        counts=counts,
        mask_labels={a: sorted(v) for a, v in mask_labels.items()},
    )


def read_animal(source: AnnolidSource, animal: str, bodyparts=None, n_frames: int | None = None):
    """One animal's arrays.

    Returns
    -------
    tuple
        ``(chosen_animal, coordinates (frames, bodyparts, 2), confidences (frames, bodyparts),
        bodyparts, extra_attrs)``.
    """
    data = read_points(source)
    path = source.path
    animal = "" if animal is None else str(animal)
    if animal not in data.animals:
        listed = ", ".join(repr(a) for a in data.animals)
        if animal == "" and len(data.animals) > 1:
            raise fail(path, f"holds {len(data.animals)} animals ({listed}); name one in the 'animal' column")
        if animal == "" and len(data.animals) == 1:
            animal = data.animals[0]
        elif data.animals == [""]:
            raise fail(path, f"holds a single animal, but animal {animal!r} was requested; leave it empty")
        else:
            raise fail(path, f"has no animal {animal!r}; the annotations hold: {listed}")

    if bodyparts:
        order = [str(b) for b in bodyparts]
        unknown = [b for b in data.bodyparts if b not in order]
        if unknown:
            raise fail(
                path,
                f"Annolid point labels {unknown} are not in the configured bodyparts {order}; "
                "add them to config 'bodyparts' or relabel them in Annolid",
            )
    else:
        order = data.bodyparts

    needed = data.last_frame + 1
    if n_frames is not None:
        if needed > n_frames:
            raise fail(
                path,
                f"Annolid annotations reach frame {data.last_frame} but the video has {n_frames} "
                "frames: is it the right video?",
            )
        frames = int(n_frames)
    else:
        frames = needed
    index = {b: k for k, b in enumerate(order)}
    coords = np.full((frames, len(order), 2), np.nan)
    confs = np.zeros((frames, len(order)))
    how_counts = {"score": 0, "hand": 0, "hidden": 0}
    for (a, frame, bp), (x, y, c, how) in data.points.items():
        if a == animal:
            coords[frame, index[bp]] = (x, y)
            confs[frame, index[bp]] = c
            how_counts[how] += 1
    extra = {
        "annolid_video": source.video_stem,
        "annolid_store": source.store.name if source.store else "",
        "annolid_frame_json": len(source.frame_files),
        "annolid_hidden_points": how_counts["hidden"],
        "annolid_hand_labels": how_counts["hand"],
        "annolid_duplicate_points": data.counts["duplicates"],
        "annolid_store_truncated_last_line": data.counts["store_truncated_last_line"],
        "frames_from": "video" if n_frames is not None else "last annotated frame",
    }
    if data.mask_labels.get(animal):
        # The tracker's name for this instance (its polygon/box label), for the record only.
        extra["annolid_instance_shapes"] = ", ".join(data.mask_labels[animal])
    return animal, coords, confs, list(order), extra


# --------------------------------------------------------------------------- the format record


def list_animals(fmt: PoseFormat, p: Path, path) -> list[str]:
    """Animals of an Annolid results folder (``[""]`` for a single unnamed animal)."""
    return read_points(find_source(path)).animals


def load(fmt: PoseFormat, request: LoadRequest) -> Loaded:
    """One animal of a results folder; a video beside it gives the frame count when none is given."""
    source = find_source(request.path)
    vinfo = request.video
    if vinfo is None:
        found = find_video(source)
        if found is not None:
            try:
                vinfo = video_info(found, request.path)
            except InputError:
                vinfo = None  # a file that only looks like the video: go without it
    chosen, coords, confs, bodyparts, extra = read_animal(
        source, request.animal, bodyparts=request.bodyparts, n_frames=vinfo.n_frames if vinfo else None
    )
    return Loaded(
        animal=chosen,
        coordinates=coords,
        confidences=confs,
        bodyparts=bodyparts,
        file_fps=None,
        extra=extra,
        sha256=source_digest(source),
        video=vinfo,
    )


def sniff(p: Path) -> bool:
    """An ``.ndjson`` annotation store, or a folder holding Annolid annotations."""
    if not p.is_dir():
        return True  # only .ndjson files get here; Annolid is the only reader of them
    try:
        find_source(p)
    except InputError:
        return False
    return True
