"""Rule qa_summary: QA rows of all sessions, with the training decision and its reason."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pandas as pd

from kpms_flow.atomic import write_table
from kpms_flow.qa import qa_summary
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, p = snakemake.input, snakemake.params  # noqa: F821

rows = pd.concat([pd.read_csv(path, sep="\t") for path in inp.qa], ignore_index=True)
training = pd.read_csv(inp.training, sep="\t", keep_default_na=False)
table = qa_summary(rows, p.train, p.thresholds, training)
write_table(snakemake.output[0], table)  # noqa: F821
log.info("%d sessions, %d used for training", len(table), int(table["used_for_training"].sum()))
