"""Rule training_set: which training sessions pass QA and fit the training budget, and why not."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pandas as pd

from kpms_flow.atomic import write_table
from kpms_flow.keypoints import InputError
from kpms_flow.qa import training_set
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821

rows = pd.concat([pd.read_csv(path, sep="\t") for path in snakemake.input], ignore_index=True)  # noqa: F821
p = snakemake.params  # noqa: F821
table = training_set(
    rows,
    p.thresholds,
    budget=p.get("budget"),
    groups=p.get("groups"),
    seed=p.get("seed", 0),
    latent_dim=p.get("latent_dim", "auto"),
)
for row in table[~table["used_for_training"]].itertuples():
    log.warning("session %s excluded from training: %s", row.session, row.exclusion_reason)
if not table["used_for_training"].any():
    raise InputError(
        "no training session passes QA (config key 'qa'): "
        + "; ".join(f"{r.session}: {r.exclusion_reason}" for r in table.itertuples())
    )
write_table(snakemake.output[0], table)  # noqa: F821
log.info("%d of %d training sessions train the model", int(table["used_for_training"].sum()), len(table))
