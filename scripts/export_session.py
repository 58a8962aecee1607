"""Rule export_session: one session's results as a CSV table (syllables, centroid, heading and
latent state, with the frame and its time in seconds) and, with config nwb.enabled, as NWB
(syllable bouts, cleaned keypoints, centroid, heading and the model's provenance)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import json
from pathlib import Path

from kpms_flow.atomic import write_table
from kpms_flow.keypoints import InputError, read_session
from kpms_flow.results import read_session_results, session_table
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
session = snakemake.wildcards.session  # noqa: F821
with_nwb = "nwb" in out.keys()
# The session's frame rate (its file, video or table row), else config key 'fps'.
keypoints = read_session(inp.keypoints)
fps = keypoints.fps or p.fps
if not fps and with_nwb:
    # NWB times are seconds; frame numbers posing as seconds would mislead every reader.
    raise InputError(
        f"{keypoints.source_path}: session {session} has no frame rate (none in "
        "the file, its video or the sessions table, and config key 'fps' is empty); NWB needs "
        "one: set the session's fps column or config key 'fps' (or leave NWB files out: config "
        "key 'nwb.enabled: false')"
    )
if not fps:
    log.warning("%s: frame rate unknown (no fps in the file, video, table or config): time_s left empty", session)

results = read_session_results(inp[0], session)
names = {"names": None, "descriptions": None, "labeling_method": "automated"}
if inp.mapping:  # names and merges (config key syllable_table), on a copy of the results
    from kpms_flow.syllable_names import apply_mapping, named_table, names_of, read_mapping

    mapping = read_mapping(inp.mapping[0])
    mapped = apply_mapping(results, mapping)
    table = named_table(session_table(mapped, fps=fps), mapping, results["syllable"])
    results = mapped
    syllable_names, descriptions = names_of(mapping)
    # people named or merged the model's syllables: ndx-ethogram's "curated"
    names = {"names": syllable_names, "descriptions": descriptions, "labeling_method": "curated"}
else:
    table = session_table(results, fps=fps)
write_table(out.csv, table)
log.info("%s: %d frames at %s fps, %d syllables used", session, len(table), fps, table["syllable"].nunique())

if with_nwb:
    from kpms_flow.nwb_export import SessionSyllables, export_session_nwb

    clean = read_session(inp.clean)
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
    export_session_nwb(
        out.nwb,
        data,
        json.loads(Path(inp.model).read_text()),
        inp.source,
        p.source["format"],
        animal=p.source["animal"],  # "" when the table has none
        metadata=dict(p.metadata),
        skeleton=p.skeleton,
        **names,
    )
    log.info(
        "%s: %d bouts of %d syllables -> %s",
        session,
        int((data.syllable[1:] != data.syllable[:-1]).sum()) + 1,
        len(set(data.syllable.tolist())),
        out.nwb,
    )
