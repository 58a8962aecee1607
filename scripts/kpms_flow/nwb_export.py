"""One session's syllables as NWB: bouts (ndx-ethogram), keypoints (ndx-pose), centroid,
heading and the model's provenance.

Everything written goes into the ``behavior`` processing module under names starting with
``keypoint_moseq_``; a session whose source is an NWB file gets a copy of that file with
these objects added (the source is never opened for writing).
"""

from __future__ import annotations

import datetime
import json
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .keypoints import InputError
from .results import syllable_runs

PREFIX = "keypoint_moseq_"
MODULE = "behavior"
# The objects each export adds to the behavior module (their names in the file).
NAMES = {
    "skeleton": PREFIX + "skeleton",
    "pose": PREFIX + "cleaned_keypoints",
    "centroid": PREFIX + "centroid",
    "heading": PREFIX + "heading",
    "syllable": PREFIX + "syllable",
    "ethogram": PREFIX + "syllables",
    "bouts": PREFIX + "syllable_bouts",
}


@contextmanager
def quiet_nwb():
    """Silence pynwb's notes on cached namespaces of other versions (ndx-pose 0.1 in
    DLC2NWB files): both versions stay cached in the copy, which validates."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Ignoring the following cached namespace")
        # atomic_path's temporary name does not end in .nwb; the final file does
        warnings.filterwarnings("ignore", message="The file path provided: .* does not end in '.nwb'")
        yield


@dataclass
class SessionSyllables:
    """What one session's NWB export holds.

    Attributes
    ----------
    session : str
    syllable : ndarray of int, (frames,)
        keypoint-moseq's syllable per frame (reindexed: 0 = most frequent).
    centroid : ndarray, (frames, dims)
    heading : ndarray, (frames,)
        Radians.
    coordinates : ndarray, (frames, bodyparts, dims)
        The cleaned keypoints (after outlier removal), the modelled bodyparts.
    confidences : ndarray, (frames, bodyparts)
    bodyparts : list of str
    fps : float
    """

    session: str
    syllable: np.ndarray
    centroid: np.ndarray
    heading: np.ndarray
    coordinates: np.ndarray
    confidences: np.ndarray
    bodyparts: list
    fps: float


def syllable_bouts(syllable, fps: float, start_time: float = 0.0, names=None) -> pd.DataFrame:
    """Runs of one syllable as bouts with times in seconds.

    Parameters
    ----------
    syllable : array of int, (frames,)
    fps : float
        Frames per second.
    start_time : float, default 0
        Time of frame 0 in seconds (the session's clock).
    names : dict, optional
        syllable -> name; unnamed syllables are named by their index as text (ndx-ethogram's
        convention for unsupervised tools).

    Returns
    -------
    pandas.DataFrame
        ``start_frame``, ``stop_frame`` (exclusive), ``start_time``, ``stop_time`` (the end
        of the bout's last frame), ``syllable``, ``name``.
    """
    syllable = np.asarray(syllable).astype(int)
    lengths = syllable_runs(syllable)
    stops = np.cumsum(lengths)
    starts = stops - lengths
    names = names or {}
    labels = syllable[starts]
    return pd.DataFrame(
        {
            "start_frame": starts,
            "stop_frame": stops,
            "start_time": start_time + starts / float(fps),
            "stop_time": start_time + stops / float(fps),
            "syllable": labels,
            "name": [str(names.get(int(s), int(s))) for s in labels],
        }
    )


def skeleton_edges(bodyparts, skeleton) -> np.ndarray:
    """The config's skeleton (pairs of bodypart names) as index pairs into ``bodyparts``;
    edges to bodyparts the model does not use are left out."""
    index = {b: i for i, b in enumerate(bodyparts)}
    edges = [[index[a], index[b]] for a, b in (skeleton or []) if a in index and b in index]
    return np.array(edges, dtype="uint8").reshape(-1, 2)


def source_start_time(nwbfile) -> float:
    """Time of the pose's first frame on the source NWB file's clock (0 when unknown)."""
    from ndx_pose import PoseEstimation

    for obj in nwbfile.all_children():
        if isinstance(obj, PoseEstimation):
            for series in obj.pose_estimation_series.values():
                if series.starting_time is not None:
                    return float(series.starting_time)
                if series.timestamps is not None and len(series.timestamps):
                    return float(series.timestamps[0])
    return 0.0


def _existing_pose(nwbfile):
    from ndx_pose import PoseEstimation

    found = [o for o in nwbfile.all_children() if isinstance(o, PoseEstimation)]
    return found[0] if found else None


def add_syllables(
    nwbfile,
    data: SessionSyllables,
    provenance: dict,
    skeleton=None,
    names=None,
    descriptions=None,
    labeling_method: str = "automated",
    start_time: float = 0.0,
    source_pose=None,
) -> None:
    """Add a session's keypoints, centroid, heading, syllables and bouts to ``nwbfile``.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
        A new file, or one read from the session's source in append mode.
    data : SessionSyllables
    provenance : dict
        The model's provenance (kpms_flow.provenance.model_provenance), stored as JSON in
        the bouts' ``parameters``.
    skeleton : list of [str, str], optional
        Edges between bodyparts (config key ``skeleton``).
    names, descriptions : dict, optional
        syllable -> name / description (from the syllable table).
    labeling_method : str
        ndx-ethogram's: "automated", or "curated" when people named or merged syllables.
    start_time : float
        Time of frame 0 in seconds.
    source_pose : ndx_pose.PoseEstimation, optional
        The source file's own pose estimation, linked from the bouts as their origin.
    """
    from ndx_ethogram import Ethogram, EthogramBouts
    from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton, Skeletons
    from pynwb import TimeSeries
    from pynwb.behavior import CompassDirection, Position, SpatialSeries

    names, descriptions = names or {}, descriptions or {}
    if MODULE in nwbfile.processing:
        module = nwbfile.processing[MODULE]
    else:
        module = nwbfile.create_processing_module(MODULE, "Behaviour: pose, keypoint-MoSeq syllables")
    taken = [name for name in NAMES.values() if name in module.data_interfaces]
    if taken:
        raise InputError(
            f"session {data.session}: the NWB file already holds {taken} in processing/{MODULE} "
            "(a kpms-flow export given as a source?); give the original recording's file"
        )
    rate, frames = float(data.fps), len(data.syllable)
    timing = {"rate": rate, "starting_time": float(start_time)}

    skeleton_obj = Skeleton(
        name=NAMES["skeleton"], nodes=list(data.bodyparts),
        edges=skeleton_edges(data.bodyparts, skeleton),
    )
    if "Skeletons" in module.data_interfaces:
        module["Skeletons"].add_skeletons(skeleton_obj)
    else:
        module.add(Skeletons(skeletons=[skeleton_obj]))
    dims = data.coordinates.shape[2]
    series = [
        PoseEstimationSeries(
            name=bodypart,
            description=f"{bodypart} after keypoint-moseq's outlier removal (NaN: missing)",
            data=np.asarray(data.coordinates[:, i, :], dtype=float),
            confidence=np.asarray(data.confidences[:, i], dtype=float),
            unit="pixels" if dims == 2 else "source units",
            reference_frame="the pose file's coordinates (origin and axes as the tracker wrote them)",
            **timing,
        )
        for i, bodypart in enumerate(data.bodyparts)
    ]
    pose = PoseEstimation(
        name=NAMES["pose"],
        pose_estimation_series=series,
        description="Keypoints as keypoint-MoSeq modelled them (kpms-flow's clean.h5).",
        skeleton=skeleton_obj,
        source_software="keypoint-moseq",
        source_software_version=provenance.get("packages", {}).get("keypoint-moseq", "unknown"),
    )
    module.add(pose)

    module.add(Position(name=NAMES["centroid"], spatial_series=SpatialSeries(
        name="centroid",
        description="keypoint-MoSeq's estimated centroid of the animal",
        data=np.asarray(data.centroid, dtype=float),
        reference_frame="the pose file's coordinates",
        unit="pixels" if dims == 2 else "source units",
        **timing,
    )))
    module.add(CompassDirection(name=NAMES["heading"], spatial_series=SpatialSeries(
        name="heading",
        description="keypoint-MoSeq's estimated heading of the animal",
        data=np.asarray(data.heading, dtype=float),
        reference_frame="angle from the x axis of the pose file's coordinates",
        unit="radians",
        **timing,
    )))
    per_frame = TimeSeries(
        name=NAMES["syllable"],
        description="keypoint-MoSeq syllable per frame (0 = most frequent)",
        data=np.asarray(data.syllable, dtype=np.int32),
        unit="n.a.",
        continuity="step",
        **timing,
    )
    module.add(per_frame)

    n_syllables = max([int(np.max(data.syllable)) + 1 if frames else 0, *(int(s) + 1 for s in names)])
    ethogram = Ethogram(
        name=NAMES["ethogram"],
        description="keypoint-MoSeq syllables of the model (one row per syllable index)",
        exclusive=True,
    )
    for s in range(n_syllables):
        ethogram.add_row(
            behavior=str(names.get(s, s)),
            definition=descriptions.get(s) or f"keypoint-MoSeq syllable {s}",
            native_code=s,
        )
    module.add(ethogram)

    bouts_table = syllable_bouts(data.syllable, rate, start_time, names)
    bouts = EthogramBouts(
        name=NAMES["bouts"],
        description="keypoint-MoSeq syllable bouts: runs of one syllable",
        labeling_method=labeling_method,
        source_software=f"keypoint-moseq {provenance.get('packages', {}).get('keypoint-moseq', 'unknown')}"
        f" (kpms-flow {provenance.get('kpms_flow', {}).get('version', 'unknown')})",
        parameters=json.dumps(provenance, default=str),
    )
    bouts.add_column("syllable", "keypoint-MoSeq syllable index (0 = most frequent)")
    for row in bouts_table.itertuples():
        bouts.add_row(
            start_time=float(row.start_time), stop_time=float(row.stop_time),
            label=row.name, syllable=int(row.syllable),
        )
    bouts.ethogram = ethogram
    bouts.source = per_frame
    bouts.source_pose = source_pose if source_pose is not None else pose
    module.add(bouts)


def new_nwbfile(session: str, animal: str, source_path, identifier: str, metadata=None):
    """An NWBFile for a session whose source is no NWB file.

    The recording's start is not in pose files: the source file's modification time stands
    in, and the description says so.

    Parameters
    ----------
    metadata : dict, optional
        Config section ``nwb``: species, sex, age (ISO 8601 duration), experimenter,
        institution, experiment_description; None values are left out.
    """
    from pynwb import NWBFile
    from pynwb.file import Subject

    meta = {k: v for k, v in (metadata or {}).items() if v not in (None, "", [])}
    modified = datetime.datetime.fromtimestamp(Path(source_path).stat().st_mtime, tz=datetime.timezone.utc)
    subject = Subject(
        subject_id=animal or session,
        description="the tracked animal",
        **{k: meta[k] for k in ("species", "sex", "age") if k in meta},
    )
    return NWBFile(
        session_description=(
            f"kpms-flow session {session}: keypoint-MoSeq syllables from {Path(source_path).name}. "
            "session_start_time is the pose file's modification time (the recording's start "
            "is not in pose files)."
        ),
        identifier=identifier,
        session_id=session,
        session_start_time=modified,
        subject=subject,
        keywords=["keypoint-MoSeq", "behavioral syllables", "pose estimation"],
        **{k: meta[k] for k in ("experimenter", "institution", "experiment_description") if k in meta},
    )


def export_session_nwb(
    out,
    data: SessionSyllables,
    provenance: dict,
    source_path,
    source_format: str,
    animal: str = "",
    metadata=None,
    **add_kwargs,
) -> None:
    """Write ``out``: a new NWB file, or a copy of the NWB source with the syllables added.

    Parameters
    ----------
    out : path
        The NWB file to write (atomically).
    data, provenance
        See :func:`add_syllables`.
    source_path : path
        The session's pose file; for ``source_format == "nwb"`` it is copied, never written.
    source_format : str
        The sessions table's format.
    animal : str
        The subject's id in a new file (the session's name when empty).
    metadata : dict, optional
        Config section ``nwb`` for a new file (see :func:`new_nwbfile`); an NWB source
        keeps its own.
    add_kwargs
        Passed to :func:`add_syllables` (skeleton, names, descriptions, labeling_method).
    """
    from pynwb import NWBHDF5IO

    # Register the extensions before a file is opened: an NWBHDF5IO knows only the types
    # registered when it was made, and would write the bouts of an NWB source as plain
    # TimeIntervals, losing the ethogram fields (source_pose, ethogram, ...).
    import ndx_ethogram  # noqa: F401
    import ndx_pose  # noqa: F401

    source_path = Path(source_path)
    with atomic_path(out) as tmp, quiet_nwb():
        if source_format == "nwb":
            shutil.copyfile(source_path, tmp)
            with NWBHDF5IO(str(tmp), mode="a", load_namespaces=True) as io:
                nwbfile = io.read()
                add_syllables(
                    nwbfile, data, provenance,
                    start_time=source_start_time(nwbfile),
                    source_pose=_existing_pose(nwbfile),
                    **add_kwargs,
                )
                io.write(nwbfile)
        else:
            identifier = f"kpms-flow:{data.session}:{provenance.get('model', {}).get('sha256', '')[:16]}"
            nwbfile = new_nwbfile(data.session, animal, source_path, identifier, metadata)
            add_syllables(nwbfile, data, provenance, **add_kwargs)
            with NWBHDF5IO(str(tmp), mode="w") as io:
                io.write(nwbfile)


def read_bouts(path) -> pd.DataFrame:
    """The syllable bouts of an exported file (start_time, stop_time, label, syllable)."""
    from pynwb import NWBHDF5IO

    import ndx_ethogram  # noqa: F401 - registers the extension's classes

    with quiet_nwb(), NWBHDF5IO(str(path), mode="r", load_namespaces=True) as io:
        return io.read().processing[MODULE][NAMES["bouts"]].to_dataframe()
