"""The pose formats kpms-flow reads: one record each, defined here and nowhere else.

The names are those keypoint-moseq 0.8.1's ``load_keypoints`` accepts (case-sensitive), with
the extensions its loaders read (the same table as in ``keypoint_moseq.io.load_keypoints``),
plus ``annolid`` (its path is a results folder or the ``.ndjson`` store). The sessions table
(:mod:`kpms_flow.sessions`) takes its list from here; ``workflow/schemas/sessions.schema.yaml``
repeats it as an enum for Snakemake's validation, and a test checks the two agree.

The order matters for :func:`sniff_format`: for a file whose extension several formats read,
the first record whose ``sniff`` recognises the content wins.
"""

from __future__ import annotations

from pathlib import Path

from ..keypoints import InputError
from . import anipose, annolid, dannce, deeplabcut, facemap, freipose, nwb, sleap
from .base import PoseFormat

REGISTRY: tuple[PoseFormat, ...] = (
    PoseFormat(
        "deeplabcut",
        (".csv", ".h5", ".hdf5"),
        sniff=deeplabcut.sniff,
        load=deeplabcut.load,
        list_animals=deeplabcut.list_animals,
    ),
    PoseFormat("sleap", (".h5", ".hdf5", ".slp"), sniff=sleap.sniff, precheck=sleap.precheck),
    PoseFormat(
        "anipose", (".csv",), sniff=anipose.sniff_anipose, precheck=anipose.precheck_anipose
    ),
    PoseFormat(
        "sleap-anipose",
        (".h5", ".hdf5"),
        sniff=anipose.sniff_sleap_anipose,
        precheck=anipose.precheck_sleap_anipose,
    ),
    PoseFormat(
        "nwb",
        (".nwb",),
        sniff=nwb.sniff,
        precheck=nwb.precheck,
        known_failures=nwb.KNOWN_FAILURES,
    ),
    PoseFormat("facemap", (".h5", ".hdf5"), sniff=facemap.sniff),
    PoseFormat("freipose", (".json",), sniff=None, precheck=freipose.precheck),
    PoseFormat("dannce", (".mat",), sniff=dannce.sniff, precheck=dannce.precheck),
    PoseFormat(
        "annolid",
        (".ndjson",),
        sniff=annolid.sniff,
        load=annolid.load,
        list_animals=annolid.list_animals,
        reads_folders=True,
        read_by_keypoint_moseq=False,
    ),
)
_BY_NAME: dict[str, PoseFormat] = {fmt.name: fmt for fmt in REGISTRY}

# Every format name a sessions table may use.
FORMATS: tuple[str, ...] = tuple(_BY_NAME)
# Extensions each format's loader reads.
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {fmt.name: fmt.extensions for fmt in REGISTRY}
# The subset read by keypoint-moseq's own loaders.
KPMS_FORMATS: tuple[str, ...] = tuple(fmt.name for fmt in REGISTRY if fmt.read_by_keypoint_moseq)
# Extensions looked at when a folder or glob is searched for pose files without a format: those
# whose content tells the format. Left out: .json (LabelMe/Annolid folders are full of .json
# that are not FreiPose files) and .ndjson (Annolid results are found as folders).
DISCOVER_EXTENSIONS: tuple[str, ...] = tuple(
    dict.fromkeys(
        ext for fmt in REGISTRY if fmt.sniff is not None and not fmt.reads_folders for ext in fmt.extensions
    )
)


def check_format(format: str, path=None) -> str:
    """Return ``format`` if it is one of :data:`FORMATS`, else raise :class:`InputError`.

    Parameters
    ----------
    format : str
        Format name (case-sensitive, as in keypoint-moseq; or ``annolid``).
    path : path-like, optional
        File the format is for; named in the error message.

    Returns
    -------
    str
        ``format``, unchanged.
    """
    return get_format(format, path).name


def get_format(format: str, path=None) -> PoseFormat:
    """The record of a format name; :class:`InputError` naming the valid ones otherwise.

    Parameters
    ----------
    format : str
        Format name (case-sensitive).
    path : path-like, optional
        File the format is for; named in the error message.

    Returns
    -------
    PoseFormat
        The format's record.
    """
    if format not in _BY_NAME:
        where = f"{path}: " if path is not None else ""
        hint = ""
        if isinstance(format, str) and format.strip().lower() in _BY_NAME:
            hint = f" (names are case-sensitive: did you mean '{format.strip().lower()}'?)"
        raise InputError(
            f"{where}unknown format {format!r}{hint}; valid formats are: {', '.join(FORMATS)}"
        )
    return _BY_NAME[format]


def sniff_format(path) -> str | None:
    """Guess the format of a file (or Annolid results folder) from its extension and content.

    Parameters
    ----------
    path : path-like
        The file or folder.

    Returns
    -------
    str or None
        The first format (in :data:`REGISTRY` order) that reads the extension and recognises
        the content, or None when the file does not identify itself (e.g. a CSV that is
        neither a DeepLabCut nor an anipose table, or a ``.json``).
    """
    p = Path(path)
    if p.is_dir():
        candidates = [fmt for fmt in REGISTRY if fmt.reads_folders]
    else:
        candidates = [fmt for fmt in REGISTRY if p.suffix.lower() in fmt.extensions]
    for fmt in candidates:
        if fmt.sniff is not None and fmt.sniff(p):
            return fmt.name
    return None
