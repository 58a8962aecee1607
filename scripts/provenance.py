"""Rule provenance: the model's provenance with the sessions and the effective config."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import json
from pathlib import Path

import pandas as pd

from kpms_flow.provenance import provenance_record, write_provenance
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, p = snakemake.input, snakemake.params  # noqa: F821

training = pd.read_csv(inp.training, sep="\t", keep_default_na=False)
used = training.loc[training["used_for_training"].astype(bool), "session"].tolist()
record = provenance_record(
    p.config,
    json.loads(Path(inp.model).read_text()),
    inp.keypoints,
    p.train_sessions,
    used,
)
write_provenance(snakemake.output[0], record)  # noqa: F821
log.info(
    "%d train, %d applied, %d excluded sessions",
    len(record["sessions"]["train"]),
    len(record["sessions"]["applied"]),
    len(record["sessions"]["excluded"]),
)
