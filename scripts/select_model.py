"""Rule select_model: EML over the restarts, the chosen checkpoint, stability, convergence."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.selection import select_job

select_job(snakemake)  # noqa: F821
