"""NWB files with ndx-pose ``PoseEstimation`` (e.g. written by DLC2NWB).

keypoint-moseq 0.8.1 reads only the skeleton's nodes and silently drops other
PoseEstimationSeries: such files are refused. The frame rate comes from the series. A
PoseEstimation without a skeleton (an older ndx-pose's file without ``nodes``) makes ndx-pose
fail with a programmer's message; it is explained (:data:`KNOWN_FAILURES`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..keypoints import InputError
from .base import FileFacts, KnownFailure, fail, quiet_nwb


def _nwb_info(p: Path, path) -> tuple[float | None, bool]:
    """Check the series keypoint-moseq will read; return (frame rate or None, has confidences).

    The rate is the first PoseEstimationSeries' ``rate``, else from its timestamps.
    """
    from ndx_pose import PoseEstimation
    from pynwb import NWBHDF5IO

    try:
        with quiet_nwb(), NWBHDF5IO(str(p), mode="r", load_namespaces=True) as nwb_io:
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
                raise fail(
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
        raise fail(path, f"cannot be read as an NWB file: {type(err).__name__}: {err}") from err
    if ts.size < 2:
        return None, has_conf
    # DLC2NWB writes the frame indices 0, 1, 2, ... as "timestamps" when it cannot find the
    # video; taking them as seconds would give a bogus 1 fps.
    if np.array_equal(ts, np.arange(ts.size, dtype=float)):
        return None, has_conf
    step = float(np.median(np.diff(ts)))
    return (1.0 / step if step > 0 else None), has_conf


def precheck(p: Path, path) -> FileFacts:
    """Check the series keypoint-moseq will read; take the file's frame rate."""
    file_fps, scores_in_file = _nwb_info(p, path)
    return FileFacts(file_fps=file_fps, scores_in_file=scores_in_file)


def sniff(p: Path) -> bool:
    """Any ``.nwb`` (only the nwb loader reads them)."""
    return True


def _ndx_pose_versions(p: Path) -> list[str]:
    """The ndx-pose versions whose namespace the file caches (the version that wrote it)."""
    import h5py

    try:
        with h5py.File(p, "r") as f:
            cached = f.get("specifications/ndx-pose")
            return sorted(cached.keys()) if cached is not None else []
    except OSError:
        return []


def _explain_no_skeleton(p: Path) -> str:
    versions = _ndx_pose_versions(p)
    older = [v for v in versions if v.split(".")[:2] in (["0", "1"], ["0", "0"])]
    if older:
        how = (
            f"the file was written with ndx-pose {older[0]}, whose PoseEstimation could leave out "
            "its list of bodyparts ('nodes'), and this one does"
        )
    else:
        written = f" (written with ndx-pose {versions[-1]})" if versions else ""
        how = f"its PoseEstimation links no Skeleton{written}"
    return (
        "this NWB file's pose estimation has no skeleton, so it names no bodyparts: "
        f"{how}. keypoint-moseq reads the bodyparts from the skeleton and cannot load it. "
        "Re-export the NWB with ndx-pose >= 0.2, giving its PoseEstimation a Skeleton that "
        "names the bodyparts (ndx-pose's README shows how), or give the tracker's own file "
        "instead (e.g. the DeepLabCut .h5 with format deeplabcut)"
    )


# ndx-pose's failures keypoint-moseq passes through, explained in the user's terms.
KNOWN_FAILURES = (KnownFailure(r"PoseEstimation object has no Skeleton", _explain_no_skeleton),)
