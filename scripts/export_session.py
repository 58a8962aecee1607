"""Rule export_session: one session's syllables, centroid, heading and latent state as CSV."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.results import session_table, read_session_results
from kpms_flow.atomic import write_table
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
session = snakemake.wildcards.session  # noqa: F821
table = session_table(read_session_results(snakemake.input[0], session))  # noqa: F821
write_table(snakemake.output[0], table)  # noqa: F821
log.info("%s: %d frames, %d syllables used", session, len(table), table["syllable"].nunique())
