"""Rule apply_batch: syllables for several sessions outside the training set in one job
(config apply.sessions_per_job), each applied on its own into the batch's folder."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.runtime import start_jax_job

log, settings = start_jax_job(snakemake)  # noqa: F821

from kpms_flow.apply_batches import apply_batch
from kpms_flow.config import kpms_config
from kpms_flow.model import read_training_attrs

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

bodyparts, _, _ = read_training_attrs(inp.data)
written = apply_batch(
    inp.checkpoint,
    list(inp.clean),
    kpms_config(p.model, bodyparts),
    p.num_iters,
    out[0],
    settings.gpu_memory_gb,
    log,
)
log.info("applied the model to %d sessions: %s", len(written), ", ".join(written))
