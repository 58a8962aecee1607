"""Rule fit_full_model: full model continued from the AR-HMM at the full-model kappa."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.runtime import configure_jax, log_to

log = log_to(snakemake.log[0])  # noqa: F821
configure_jax(snakemake.threads)  # noqa: F821

from pathlib import Path

from kpms_flow.model import (
    FitSpec,
    continue_with_kappa,
    fingerprint,
    load_training_data,
    run_fit,
    saved_iterations,
)

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

data, metadata, _, fps, _ = load_training_data(inp.data)
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
)
log.info("full model: kappa %g, iterations %d..%d", p.kappa, ar_iters, spec.num_iters)
run_fit(spec, data, metadata, lambda: continue_with_kappa(inp.arhmm, p.kappa))
