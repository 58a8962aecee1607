"""Rule export_session: one session's syllables, centroid, heading and latent state as CSV,
with the frame and its time in seconds."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.results import session_table, read_session_results
from kpms_flow.atomic import write_table
from kpms_flow.keypoints import read_session
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp = snakemake.input  # noqa: F821
session = snakemake.wildcards.session  # noqa: F821
# The session's frame rate (its file, video or table row), else config key 'fps'.
fps = read_session(inp.keypoints).fps or snakemake.params.fps  # noqa: F821
if not fps:
    log.warning("%s: frame rate unknown (no fps in the file, video, table or config): time_s left empty", session)
results = read_session_results(inp[0], session)
if inp.mapping:  # names and merges (config key syllable_table), on a copy of the results
    from kpms_flow.syllable_names import apply_mapping, named_table, read_mapping

    mapping = read_mapping(inp.mapping[0])
    table = named_table(session_table(apply_mapping(results, mapping), fps=fps), mapping, results["syllable"])
else:
    table = session_table(results, fps=fps)
write_table(snakemake.output[0], table)  # noqa: F821
log.info("%s: %d frames at %s fps, %d syllables used", session, len(table), fps, table["syllable"].nunique())
