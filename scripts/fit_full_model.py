"""Rule fit_full_model: the final full model (chosen probe continued, or the AR-HMM
continued at a fixed kappa)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.runtime import configure_jax
from kpms_flow.watchdog import supervise

# The work runs in a child process, restarted by a watchdog when it stops making progress
# (settings read from the config, not params: changing them must not rerun the job).
log = supervise(snakemake.log[0], snakemake.config.get("watchdog"), what="fit_full_model")  # noqa: F821
configure_jax(snakemake.threads)  # noqa: F821

from pathlib import Path

import pandas as pd

from kpms_flow.model import (
    FitSpec,
    continue_with_kappa,
    fingerprint,
    load_training_data,
    nan_retry_settings,
    run_fit,
    saved_iterations,
)
from kpms_flow.resources import checkpoint_latent_dim, plan_for_job

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

data, metadata, _, fps, _ = load_training_data(inp.data)
if "chosen" in inp.keys():
    chosen = pd.read_csv(inp.chosen, sep="\t").iloc[0]
    start_from = Path(chosen["checkpoint"])
    # The probe started at the AR-HMM's last iteration and ran kappa_search.num_iters.
    ar_iters = saved_iterations(start_from)[0]
else:
    start_from = None
    ar_iters = saved_iterations(inp.arhmm)[-1]
spec = FitSpec(
    work_dir=Path(out[0]).parent / "work",
    output=Path(out[0]),
    # keypoint-moseq's notebook continues at the AR-HMM's last iteration.
    num_iters=ar_iters + p.num_iters,
    ar_only=False,
    fingerprint=fingerprint(*inp, dict(p.items())),
    save_every_n_iters=p.save_every_n_iters,
    jitter=p.jitter,
    fps=fps,
    **nan_retry_settings(snakemake.config),  # noqa: F821
    start_from=start_from,
)
memory = plan_for_job(
    data["mask"].size,
    checkpoint_latent_dim(start_from if start_from is not None else inp.arhmm),
    snakemake.config.get("gpu_memory_gb"),  # noqa: F821
    log,
)
spec.use_memory_plan(memory)
if start_from is not None:
    log.info("full model: continuing the chosen probe (kappa %g) to iteration %d", chosen["kappa"], spec.num_iters)
    run_fit(spec, data, metadata, None)
else:
    log.info("full model: kappa %g, iterations %d..%d", p.kappa, ar_iters, spec.num_iters)
    run_fit(spec, data, metadata, lambda: continue_with_kappa(inp.arhmm, p.kappa))
