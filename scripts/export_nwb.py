"""Rule export_nwb: one session's syllables, keypoints, centroid and heading as NWB."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import json
from pathlib import Path

from kpms_flow.keypoints import InputError, read_session
from kpms_flow.nwb_export import SessionSyllables, export_session_nwb
from kpms_flow.results import read_session_results
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, p = snakemake.input, snakemake.params  # noqa: F821
session = snakemake.wildcards.session  # noqa: F821

clean = read_session(inp.clean)
fps = read_session(inp.keypoints).fps or p.fps
if not fps:
    # NWB times are seconds; frame numbers posing as seconds would mislead every reader.
    raise InputError(
        f"{clean.source_path}: session {session} has no frame rate (none in the file, its "
        "video or the sessions table, and config key 'fps' is empty); NWB needs one: set "
        "the session's fps column or config key 'fps' (or leave NWB files out: config key "
        "'nwb.enabled: false')"
    )
results = read_session_results(inp[0], session)
names = {"names": None, "descriptions": None, "labeling_method": "automated"}
if inp.mapping:  # names and merges (config key syllable_table), on a copy of the results
    from kpms_flow.syllable_names import apply_mapping, names_of, read_mapping

    mapping = read_mapping(inp.mapping[0])
    results = apply_mapping(results, mapping)
    syllable_names, descriptions = names_of(mapping)
    # people named or merged the model's syllables: ndx-ethogram's "curated"
    names = {"names": syllable_names, "descriptions": descriptions, "labeling_method": "curated"}
data = SessionSyllables(
    session=session,
    syllable=results["syllable"],
    centroid=results["centroid"],
    heading=results["heading"],
    coordinates=clean.coordinates,
    confidences=clean.confidences,
    bodyparts=clean.bodyparts,
    fps=float(fps),
)
provenance = json.loads(Path(inp.model).read_text())
export_session_nwb(
    snakemake.output[0],  # noqa: F821
    data,
    provenance,
    inp.source,
    p.format,
    animal=p.animal if isinstance(p.animal, str) else "",  # empty cells read as NaN
    metadata=dict(p.metadata),
    skeleton=p.skeleton,
    **names,
)
log.info(
    "%s: %d frames at %s fps, %d bouts of %d syllables -> %s",
    session,
    len(data.syllable),
    fps,
    int((data.syllable[1:] != data.syllable[:-1]).sum()) + 1,
    len(set(data.syllable.tolist())),
    snakemake.output[0],  # noqa: F821
)
