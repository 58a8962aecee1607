"""Rule fit_arhmm: the final AR-HMM (the chosen probe continued, or a fixed-kappa fit)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.fitting import fit_job

fit_job(snakemake, "arhmm")  # noqa: F821
