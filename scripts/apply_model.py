"""Rule apply_model: syllables for a session outside the training set (frozen model)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.runtime import start_jax_job

log, settings = start_jax_job(snakemake)  # noqa: F821

from kpms_flow.config import kpms_config
from kpms_flow.keypoints import read_session
from kpms_flow.model import apply_to_session, read_training_attrs
from kpms_flow.resources import checkpoint_latent_dim, plan_for_job

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

bodyparts, _, _ = read_training_attrs(inp.data)
kp = read_session(inp.clean)
memory = plan_for_job(
    kp.n_frames,
    checkpoint_latent_dim(inp.checkpoint),
    settings.gpu_memory_gb,
    log,
)
apply_to_session(inp.checkpoint, kp, kpms_config(p.model, bodyparts), p.num_iters, out[0], memory)
log.info("applied the model to %s (%d frames, %d iterations)", kp.session, kp.n_frames, p.num_iters)
