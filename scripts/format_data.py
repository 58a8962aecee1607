"""Rule format_data: training sessions that pass QA -> keypoint-moseq's formatted data."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import keypoint_moseq as kpms
import pandas as pd

from kpms_flow.atomic import write_table
from kpms_flow.config import kpms_config
from kpms_flow.keypoints import InputError
from kpms_flow.model import load_training_sessions, save_training_data, training_fps
from kpms_flow.qa import exclusion_reason
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

rows = pd.concat([pd.read_csv(path, sep="\t") for path in inp.qa], ignore_index=True)
rows["exclusion_reason"] = [exclusion_reason(r, p.thresholds) for _, r in rows.iterrows()]
rows["used_for_training"] = rows["exclusion_reason"] == ""
for _, row in rows[~rows["used_for_training"]].iterrows():
    log.warning("session %s excluded from training: %s", row["session"], row["exclusion_reason"])
used = rows.loc[rows["used_for_training"], "session"].tolist()
if not used:
    raise InputError(
        "no training session passes QA (config key 'qa'): "
        + "; ".join(f"{r.session}: {r.exclusion_reason}" for r in rows.itertuples())
    )

clean_by_session = dict(zip(p.sessions, inp.clean))
coordinates, confidences, bodyparts, fps = load_training_sessions(
    {s: clean_by_session[s] for s in used}, p.model["bodyparts"], p.model["use_bodyparts"]
)
frame_rate = training_fps(fps, p.model["fps"])
kcfg = kpms_config(p.model, bodyparts)
data, metadata = kpms.format_data(coordinates, confidences, **kcfg)
save_training_data(out.data, data, metadata, bodyparts, frame_rate, used)
write_table(out.sessions, rows[["session", "frames", "used_for_training", "exclusion_reason"]])
log.info(
    "%d training sessions, %d frames, %d segments, bodyparts %s, fps %s",
    len(used),
    int(data["mask"].sum()),
    data["Y"].shape[0],
    bodyparts,
    frame_rate,
)
