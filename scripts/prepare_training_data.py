"""Rule prepare_training_data: the training set's sessions -> keypoint-moseq's formatted data,
then PCA on it; latent_dim fixed or chosen by variance."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import joblib
import keypoint_moseq as kpms
import numpy as np
import pandas as pd

from kpms_flow.atomic import atomic_path, write_table, write_text
from kpms_flow.config import kpms_config
from kpms_flow.model import (
    choose_latent_dim,
    load_training_data,
    load_training_sessions,
    save_training_data,
    training_fps,
)
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

training = pd.read_csv(inp.training, sep="\t", keep_default_na=False)
used = training.loc[training["used_for_training"], "session"].tolist()
clean_by_session = dict(zip(p.sessions, inp.clean))
coordinates, confidences, bodyparts, fps = load_training_sessions(
    {s: clean_by_session[s] for s in used}, p.model["bodyparts"], p.model["use_bodyparts"]
)
frame_rate = training_fps(fps, p.model["fps"])
kcfg = kpms_config(p.model, bodyparts)
data, metadata = kpms.format_data(coordinates, confidences, **kcfg)
save_training_data(out.data, data, metadata, bodyparts, frame_rate, used)
log.info(
    "%d training sessions, %d frames, %d segments, bodyparts %s, fps %s",
    len(used),
    int(data["mask"].sum()),
    data["Y"].shape[0],
    bodyparts,
    frame_rate,
)

# PCA on the data as written, as every later rule reads it.
data, metadata, bodyparts, fps, sessions = load_training_data(out.data)
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
