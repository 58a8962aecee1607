"""Rule fit_pca: PCA on the training data; latent_dim fixed or chosen by variance."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import joblib
import keypoint_moseq as kpms
import numpy as np
import pandas as pd

from kpms_flow.atomic import atomic_path, write_table, write_text
from kpms_flow.config import kpms_config
from kpms_flow.model import choose_latent_dim, load_training_data
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
out, p = snakemake.output, snakemake.params  # noqa: F821

data, metadata, bodyparts, fps, sessions = load_training_data(snakemake.input[0])  # noqa: F821
kcfg = kpms_config(p.model, bodyparts)
pca = kpms.fit_pca(**data, **kcfg)
latent_dim, explained = choose_latent_dim(pca, p.latent_dim, p.variance_threshold)
with atomic_path(out.pca) as tmp:
    joblib.dump(pca, tmp)
ratios = pca.explained_variance_ratio_
write_table(
    out.variance,
    pd.DataFrame(
        {
            "component": np.arange(1, len(ratios) + 1),
            "explained_variance_ratio": ratios,
            "cumulative": np.cumsum(ratios),
        }
    ),
)
write_text(out.latent_dim, f"{latent_dim}\n")
log.info(
    "latent_dim %d (%s) explains %.1f%% of the variance",
    latent_dim,
    "auto" if p.latent_dim == "auto" else "fixed",
    100 * explained,
)
