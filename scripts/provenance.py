"""Rule provenance: the versions, config, seeds, sessions, kappas and model behind a run."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

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
    inp.model,
    inp.keypoints,
    p.train_sessions,
    used,
    workflow_dir=Path(snakemake.scriptdir).parent,  # noqa: F821
    kappa_tables=inp.kappa,
    fit_tables=inp.fits,
    configured_kappa=p.kappa,
)
write_provenance(snakemake.output[0], record)  # noqa: F821
log.info(
    "model sha256 %s; kpms-flow %s at %s; %d train, %d applied sessions",
    record["model"]["sha256"][:12],
    record["kpms_flow"]["version"],
    record["kpms_flow"]["commit"],
    len(record["sessions"]["train"]),
    len(record["sessions"]["applied"]),
)
