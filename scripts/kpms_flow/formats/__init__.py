"""Load one session of pose tracking with keypoint-moseq's own loaders, with checks.

keypoint-moseq 0.8.1 (``keypoint_moseq.io``) has one private loader per format, each taking
``(filepath, name)`` and returning ``(coordinates, confidences, bodyparts)`` where the two
dicts are keyed by ``name`` (one animal) or ``name_<animal>`` (several). We call those loaders
directly (no glob, one file at a time) so that the arrays are exactly what keypoint-moseq would
model, and wrap them with the checks that keypoint-moseq lacks. Its known silent mis-loads,
each turned into an :class:`~kpms_flow.keypoints.InputError` here:

* multi-animal DeepLabCut tables: ``bodyparts`` comes back as a *set* (random order) although
  the arrays follow the header order. We read the header order ourselves.
* DeepLabCut-style tables without a ``likelihood`` coordinate (e.g. MABe exports): the loader
  reshapes the columns by threes and silently returns the wrong keypoints. Refused.
* any DeepLabCut table whose columns are not ``x, y, likelihood`` triples (an extra index column,
  3D ``z`` columns, several scorers): same reshape problem. Refused (an index column that pandas
  added is named as such, with the line that drops it). A scorer row carrying pandas'
  duplicate-name suffixes (``X, X.1, X.2``: a CSV read and saved again with pandas) is one
  scorer, as keypoint-moseq reads it.
* an h5 with several pandas keys: keypoint-moseq fails. We read the file if exactly one key holds
  a DeepLabCut table, and refuse it (listing the keys) otherwise.
* old SLEAP analysis h5 without ``point_scores``: keypoint-moseq fails with a bare ``KeyError``.
  Refused with the cause.
* a SLEAP ``.slp`` holding several videos: keypoint-moseq silently loads the first video only.
  Refused.
* anipose csv whose bodypart names are not ``\\w+``: keypoint-moseq's header regex silently drops
  them (the message says how to rename them); one without a ``<bodypart>_score`` column per
  bodypart, or whose ``fnum`` column skips frames (rows would be taken as consecutive frames).
  Refused.
* sleap-anipose h5 that is a SLEAP analysis h5 (or not ``(frames, tracks, nodes, 3)``): the
  loader would slice the wrong axes. Refused.
* a ``.slp`` with several instances per frame but no tracks: keypoint-moseq gets no animal at
  all. Refused.
* NWB files whose PoseEstimationSeries are not all skeleton nodes: keypoint-moseq reads only the
  nodes and silently drops the other series. Refused.
* known library failures (each format's ``known_failures``, e.g. ndx-pose's "This PoseEstimation
  object has no Skeleton" for an NWB written by an older ndx-pose without ``nodes``): the message
  gives the cause in the user's terms and what to do, with the library's text on the next line.
* DANNCE ``.mat`` whose ``sampleID`` is not evenly spaced (predictions of separate stretches of
  video would be joined as consecutive frames), or whose ``pred`` is not
  ``(frames, 3, keypoints)``. Refused. An even stride (e.g. every 10th frame) is recorded as
  ``sample_stride`` and divides a video's frame rate.
* non-pose CSVs given as pose files (BORIS behaviour events, Annolid's derived tracking tables):
  refused saying what they are.

The ``annolid`` format (not a keypoint-moseq format) is read by :mod:`kpms_flow.formats.annolid`.

For every format the number of bodypart names is checked against the array.
Frame rate: the file's (NWB rate/timestamps, SLEAP video metadata), else the session's video
(OpenCV), else the sessions table; any two of them that disagree by more than 1 % are refused.

Missing values are normalised to the session-file contract (:mod:`kpms_flow.keypoints`):
a keypoint with any NaN/inf coordinate becomes all-NaN with confidence 0, and NaN confidences
become 0.

Layout: one module per source family (:mod:`.deeplabcut`, :mod:`.sleap`, :mod:`.anipose`
(anipose and sleap-anipose), :mod:`.nwb`, :mod:`.facemap`, :mod:`.freipose`, :mod:`.dannce`,
:mod:`.annolid`), each giving its format's sniffing, pre-check and (where keypoint-moseq's
loader is not used as is) loader; one :class:`~.base.PoseFormat` record per format in
:mod:`.registry`, the only list of formats; :mod:`.session` runs the steps shared by all
formats (path checks, array checks, frame rate) and :mod:`.nonpose` recognises files that are
not pose tracking.
"""


from .base import PoseFormat, VideoInfo
from .nonpose import describe_non_pose
from .registry import (
    DISCOVER_EXTENSIONS,
    FORMAT_EXTENSIONS,
    FORMATS,
    KPMS_FORMATS,
    REGISTRY,
    check_format,
    get_format,
    sniff_format,
)
from .session import list_animals, load_model_session, load_session, validate_session
from .video import video_info

__all__ = [
    "DISCOVER_EXTENSIONS",
    "FORMATS",
    "FORMAT_EXTENSIONS",
    "KPMS_FORMATS",
    "REGISTRY",
    "PoseFormat",
    "VideoInfo",
    "check_format",
    "describe_non_pose",
    "get_format",
    "list_animals",
    "load_model_session",
    "load_session",
    "sniff_format",
    "validate_session",
    "video_info",
]
