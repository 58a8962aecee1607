"""Rule model_provenance: what identifies the delivered model (hash, kappas, seeds, versions)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from pathlib import Path

import pandas as pd

from kpms_flow.provenance import chosen_kappas, model_provenance, write_provenance
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, p = snakemake.input, snakemake.params  # noqa: F821

# The delivered model's restart: the model selection's choice, or the only one.
restart = {"name": "restart_0", "seed": int(p.seeds.get("seed", 0)), "restarts": 1}
if inp.selection:
    eml = pd.read_csv(inp.selection[0], sep="\t")
    chosen = eml[eml["chosen"].astype(bool)].iloc[0]
    restart = {"name": str(chosen["restart"]), "seed": int(chosen["seed"]), "restarts": len(eml)}
fits = [f for f in inp.fits if Path(f).parent.parent.name == restart["name"]]
record = model_provenance(
    inp.model,
    chosen_kappas(inp.kappa, fits, p.kappa),
    dict(p.seeds),
    workflow_dir=Path(snakemake.scriptdir).parent,  # noqa: F821
)
record["restart"] = restart
write_provenance(snakemake.output[0], record)  # noqa: F821
log.info(
    "model sha256 %s; kpms-flow %s at %s (uncommitted changes: %s)",
    record["model"]["sha256"][:12],
    record["kpms_flow"]["version"],
    record["kpms_flow"]["commit"],
    record["kpms_flow"]["dirty"],
)
