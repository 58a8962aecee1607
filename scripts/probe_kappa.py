"""Rule probe_kappa: one short fit at one kappa; its median duration decides the search."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.fitting import fit_job

fit_job(snakemake, "probe")  # noqa: F821
