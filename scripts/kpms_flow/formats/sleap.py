"""SLEAP: ``.slp`` project files and analysis ``.h5``/``.hdf5`` files.

keypoint-moseq 0.8.1 reads ``.slp`` through sleap-io and silently loads only the first video of
a file with several, and no animal at all when instances have no tracks; an old analysis h5
without ``point_scores`` fails with a bare ``KeyError``. Such files are refused here.
"""

from __future__ import annotations

from pathlib import Path

from ..keypoints import InputError
from .base import FileFacts, fail, retry_hdf5_glitch


def _sleap_h5_check(p: Path, path) -> list[str]:
    """Check a SLEAP analysis h5 has what keypoint-moseq reads; return its track names."""
    import h5py

    try:
        with h5py.File(p, "r") as f:
            keys = set(f.keys())
            missing = [k for k in ("tracks", "node_names") if k not in keys]
            if missing:
                raise fail(
                    path,
                    f"is not a SLEAP analysis h5: missing dataset(s) {', '.join(missing)} "
                    f"(found {', '.join(sorted(keys)) or 'none'})",
                )
            shape = f["tracks"].shape
            if len(shape) != 4 or shape[1] not in (2, 3):
                raise fail(
                    path,
                    f"'tracks' has shape {shape}, not SLEAP's (tracks, 2, nodes, frames); a "
                    "sleap-anipose file? then use format 'sleap-anipose'",
                )
            if "point_scores" not in keys:
                raise fail(
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
        raise fail(path, f"is not a readable HDF5 file ({err})") from err


def _sleap_slp_info(p: Path, path) -> tuple[list[str], float | None, dict]:
    """Check a .slp the way keypoint-moseq will read it; return (track names, video fps, attrs)."""
    import sleap_io

    try:
        labels = retry_hdf5_glitch(lambda: sleap_io.load_slp(str(p), open_videos=False))
    except Exception as err:  # noqa: BLE001
        raise fail(path, f"cannot be read as a SLEAP .slp file: {type(err).__name__}: {err}") from err
    if len(labels.videos) > 1:
        raise fail(
            path,
            f".slp holds {len(labels.videos)} videos; keypoint-moseq 0.8.1 silently loads only "
            "the first. Split it into one .slp per video",
        )
    if len(labels.skeletons) != 1:
        raise fail(path, f".slp holds {len(labels.skeletons)} skeletons; keypoint-moseq needs exactly one")
    if len(labels.labeled_frames) == 0:
        raise fail(path, ".slp holds no labeled frames")
    # sleap-io (as keypoint-moseq calls it) returns one "track" when every frame holds at most one
    # instance, else only the *tracked* instances: untracked ones are dropped without a word.
    most = max(len(lf.instances) for lf in labels.labeled_frames)
    untracked = sum(1 for lf in labels.labeled_frames for inst in lf.instances if inst.track is None)
    attrs = {}
    if most > 1 and not labels.tracks:
        raise fail(
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


def precheck(p: Path, path) -> FileFacts:
    """Check a .slp or analysis h5 the way keypoint-moseq will read it."""
    if p.suffix.lower() == ".slp":
        track_names, file_fps, attrs = _sleap_slp_info(p, path)
        return FileFacts(file_fps=file_fps, track_names=tuple(track_names), extra=attrs)
    return FileFacts(track_names=tuple(_sleap_h5_check(p, path)))


def sniff(p: Path) -> bool:
    """Any ``.slp``; an h5 with ``tracks`` and ``node_names`` datasets."""
    if p.suffix.lower() == ".slp":
        return True
    import h5py

    try:
        with h5py.File(p, "r") as f:
            return "tracks" in f and "node_names" in f
    except OSError:
        return False
