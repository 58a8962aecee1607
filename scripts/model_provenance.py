"""Rule model_provenance: what identifies the delivered model (hash, kappas, seeds, versions)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from pathlib import Path

from kpms_flow.provenance import chosen_kappas, model_provenance, write_provenance
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, p = snakemake.input, snakemake.params  # noqa: F821

record = model_provenance(
    inp.model,
    chosen_kappas(inp.kappa, inp.fits, p.kappa),
    dict(p.seeds),
    workflow_dir=Path(snakemake.scriptdir).parent,  # noqa: F821
)
write_provenance(snakemake.output[0], record)  # noqa: F821
log.info(
    "model sha256 %s; kpms-flow %s at %s (uncommitted changes: %s)",
    record["model"]["sha256"][:12],
    record["kpms_flow"]["version"],
    record["kpms_flow"]["commit"],
    record["kpms_flow"]["dirty"],
)
