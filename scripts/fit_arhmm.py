"""Rule fit_arhmm: the final AR-HMM (chosen probe continued, or a fixed-kappa fit)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.runtime import configure_jax
from kpms_flow.watchdog import supervise

# The work runs in a child process, restarted by a watchdog when it stops making progress
# (settings read from the config, not params: changing them must not rerun the job).
log = supervise(snakemake.log[0], snakemake.config.get("watchdog"), what="fit_arhmm")  # noqa: F821
configure_jax(snakemake.threads)  # noqa: F821

from pathlib import Path

import joblib
import pandas as pd

from kpms_flow.config import kpms_config
from kpms_flow.model import (
    FitSpec,
    fingerprint,
    init_arhmm,
    load_training_data,
    nan_retry_settings,
    run_fit,
)
from kpms_flow.resources import checkpoint_latent_dim, plan_for_job

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

data, metadata, bodyparts, fps, _ = load_training_data(inp.data)
spec = FitSpec(
    work_dir=Path(out[0]).parent / "work",
    output=Path(out[0]),
    num_iters=p.num_iters,
    ar_only=True,
    fingerprint=fingerprint(*inp, dict(p.items())),
    save_every_n_iters=p.save_every_n_iters,
    fps=fps,
    **nan_retry_settings(snakemake.config),  # noqa: F821
)
if "chosen" in inp.keys():
    chosen = pd.read_csv(inp.chosen, sep="\t").iloc[0]
    spec.start_from = Path(chosen["checkpoint"])
    latent_dim = checkpoint_latent_dim(spec.start_from)
else:
    latent_dim = int(Path(inp.latent_dim).read_text())
memory = plan_for_job(data["mask"].size, latent_dim, snakemake.config.get("gpu_memory_gb"), log)  # noqa: F821
spec.use_memory_plan(memory)
if "chosen" in inp.keys():
    log.info("AR-HMM: continuing the chosen probe (kappa %g) to %d iterations", chosen["kappa"], p.num_iters)
    run_fit(spec, data, metadata, None)
else:
    kcfg = kpms_config(p.model, bodyparts, latent_dim=latent_dim)
    log.info("AR-HMM: kappa %g, %d iterations, latent_dim %d", p.kappa, p.num_iters, latent_dim)
    run_fit(
        spec,
        data,
        metadata,
        lambda: (init_arhmm(data, joblib.load(inp.pca), kcfg, p.kappa, p.seed, fps), 0),
    )
