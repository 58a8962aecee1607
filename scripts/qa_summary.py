"""Rule qa_summary: QA rows of all sessions, with the training decision and its reason."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pandas as pd

from kpms_flow.atomic import write_table
from kpms_flow.qa import qa_summary
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
p = snakemake.params  # noqa: F821

rows = pd.concat([pd.read_csv(path, sep="\t") for path in snakemake.input], ignore_index=True)  # noqa: F821
table = qa_summary(rows, p.train, p.thresholds)
write_table(snakemake.output[0], table)  # noqa: F821
for _, row in table[table["train_requested"] & ~table["passes_qa"]].iterrows():
    log.warning("session %s excluded from training: %s", row["session"], row["exclusion_reason"])
log.info("%d sessions, %d used for training", len(table), int(table["used_for_training"].sum()))
