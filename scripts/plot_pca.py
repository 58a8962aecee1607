"""Rule plot_pca: keypoint-moseq's scree and PC plots."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import joblib

from kpms_flow.config import kpms_config
from kpms_flow.model import plot_pca, read_training_attrs
from kpms_flow.runtime import log_to

log_to(snakemake.log[0])  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

bodyparts, _, _ = read_training_attrs(inp.data)
plot_pca(joblib.load(inp.pca), kpms_config(p.model, bodyparts), out.scree, out.pcs, dpi=p.dpi)
