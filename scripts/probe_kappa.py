"""Rule probe_kappa: one short fit at one kappa; its median duration decides the search."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.runtime import configure_jax
from kpms_flow.watchdog import supervise

# The work runs in a child process, restarted by a watchdog when it stops making progress
# (settings read from the config, not params: changing them must not rerun the job).
log = supervise(snakemake.log[0], snakemake.config.get("watchdog"), what="probe_kappa")  # noqa: F821
configure_jax(snakemake.threads)  # noqa: F821

from pathlib import Path

import joblib
import math
import pandas as pd

from kpms_flow.atomic import write_table
from kpms_flow.config import kpms_config
from kpms_flow.model import (
    FitSpec,
    continue_with_kappa,
    fingerprint,
    init_arhmm,
    load_training_data,
    nan_retry_settings,
    run_fit,
    saved_iterations,
)
from kpms_flow.resources import checkpoint_latent_dim, plan_for_job
from kpms_flow.search import probe_metrics

inp, out, p, w = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards  # noqa: F821

decision = pd.read_csv(inp.decision, sep="\t")
kappa = float(decision.loc[decision["probe"] == int(w.probe), "kappa"].iloc[0])
data, metadata, bodyparts, fps, _ = load_training_data(inp.data)
probe_dir = Path(out[0]).with_suffix("")
if w.stage == "arhmm":
    latent_dim = int(Path(inp.latent_dim).read_text())
    kcfg = kpms_config(p.model, bodyparts, latent_dim=latent_dim)
    start = lambda: (init_arhmm(data, joblib.load(inp.pca), kcfg, kappa, p.seed, fps), 0)  # noqa: E731
    first, ar_only = 0, True
else:
    first, ar_only = saved_iterations(inp.start)[-1], False
    latent_dim = checkpoint_latent_dim(inp.start)
    start = lambda: continue_with_kappa(inp.start, kappa)  # noqa: E731
spec = FitSpec(
    work_dir=probe_dir / "work",
    output=probe_dir / "checkpoint.h5",
    num_iters=first + p.num_iters,
    ar_only=ar_only,
    fingerprint=fingerprint(*inp, dict(p.items()), kappa),
    save_every_n_iters=p.save_every_n_iters,
    jitter=p.jitter,
    fps=fps,
    **nan_retry_settings(snakemake.config),  # noqa: F821
)
memory = plan_for_job(data["mask"].size, latent_dim, snakemake.config.get("gpu_memory_gb"), log)  # noqa: F821
spec.use_memory_plan(memory)
log.info("%s probe round %s #%s: kappa %.4g, %d iterations", w.stage, w.round, w.probe, kappa, p.num_iters)
model = run_fit(spec, data, metadata, start)
metrics = probe_metrics(model, data, fps)
row = {
    "stage": w.stage,
    "round": int(w.round),
    "probe": int(w.probe),
    "kappa": kappa,
    "log10_kappa": math.log10(kappa),
    **metrics,
    "iterations": p.num_iters,
}
write_table(out[0], pd.DataFrame([row]))
log.info("result %s", row)
