"""Rule reindex_syllables: final model = last snapshot, syllables by frequency."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.runtime import start_jax_job

log, _ = start_jax_job(snakemake, watched=False)  # noqa: F821

from kpms_flow.model import reindexed_copy

out = snakemake.output  # noqa: F821
index = reindexed_copy(snakemake.input[0], out.checkpoint, out.order)  # noqa: F821
log.info("syllable i was fitted state index[i]; index[:10] = %s", list(index[:10]))
