"""Rule apply_model: syllables for a session outside the training set (frozen model)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.runtime import configure_jax
from kpms_flow.watchdog import supervise

# The work runs in a child process, restarted by a watchdog when it stops making progress
# (settings read from the config, not params: changing them must not rerun the job).
log = supervise(snakemake.log[0], snakemake.config.get("watchdog"), what="apply_model")  # noqa: F821
configure_jax(snakemake.threads)  # noqa: F821

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
    snakemake.config.get("gpu_memory_gb"),  # noqa: F821
    log,
)
apply_to_session(inp.checkpoint, kp, kpms_config(p.model, bodyparts), p.num_iters, out[0], memory)
log.info("applied the model to %s (%d frames, %d iterations)", kp.session, kp.n_frames, p.num_iters)
