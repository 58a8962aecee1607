"""Rule select_model: EML over the restarts, their stability and convergence; the chosen
restart's checkpoint linked to results/selection/chosen_checkpoint.h5."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.selection import select_job

select_job(snakemake)  # noqa: F821
