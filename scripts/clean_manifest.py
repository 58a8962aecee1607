"""Rule clean_manifest: the training sessions' cleaned keypoint files, one table.

extract_results reads the clean files of the training sessions left out of the fit; which
those are is known only once training_set has run. Depending on this one table instead of
every training session's clean.h5 keeps its results.h5 (an input of two export jobs per
session) from costing Snakemake a scan of thousands of inputs per consumer
(benchmarks/README.md, "Dry run at scale").
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pandas as pd

from kpms_flow.atomic import write_table
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821

sessions = snakemake.params.sessions  # noqa: F821
table = pd.DataFrame({"session": sessions, "clean": list(snakemake.input)})  # noqa: F821
write_table(snakemake.output[0], table)  # noqa: F821
log.info("%d training sessions' clean files listed", len(table))
