"""Rule fit_full_model: the final full model (the chosen probe continued, or the AR-HMM continued at a fixed kappa)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.fitting import fit_job

fit_job(snakemake, "full_model")  # noqa: F821
