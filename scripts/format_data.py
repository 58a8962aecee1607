"""Rule format_data: the training set's sessions -> keypoint-moseq's formatted data."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import keypoint_moseq as kpms
import pandas as pd

from kpms_flow.config import kpms_config
from kpms_flow.model import load_training_sessions, save_training_data, training_fps
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
save_training_data(out[0], data, metadata, bodyparts, frame_rate, used)
log.info(
    "%d training sessions, %d frames, %d segments, bodyparts %s, fps %s",
    len(used),
    int(data["mask"].sum()),
    data["Y"].shape[0],
    bodyparts,
    frame_rate,
)
