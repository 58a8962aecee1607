"""Rule noise_calibration: keypoint-moseq's error_estimator fitted from annotations.

Writes results/calibration/error_estimator.tsv (slope, intercept, conf_threshold,
n_annotations), the fits' error_estimator (kpms_flow.config.kpms_config reads it), the
annotations in keypoint-moseq's error_annotations.csv form, and each annotation's measured
error (for rule plot_calibration). On any bad input nothing is written.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import os
import tempfile

import pandas as pd

from kpms_flow.plots import use_cpu_for_plots

use_cpu_for_plots()  # keypoint-moseq (imported below) brings JAX: keep it off the GPU

from kpms_flow.atomic import atomic_path, write_table
from kpms_flow.calibration import calibrate, session_track
from kpms_flow.keypoints import read_session
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

tracks = {}
for path in inp.keypoints:
    kp = read_session(path)
    tracks[kp.session] = session_track(kp, p.videos.get(kp.session, ""))
estimator, annotations = calibrate(
    list(inp.annotations),
    tracks,
    conf_pseudocount=p.conf_pseudocount,
    conf_threshold=p.conf_threshold,
    min_annotations=p.min_annotations,
)
log.info(
    "error_estimator from %d annotations of %d sessions: slope %.4f, intercept %.4f",
    estimator["n_annotations"],
    annotations["key"].nunique(),
    estimator["slope"],
    estimator["intercept"],
)

# Each annotation's confidence and error, as fitted: the plot rule draws them.
write_table(out.measured, annotations)

# keypoint-moseq's own writer, so the file loads in its tools unchanged.
from keypoint_moseq.calibration import save_annotations

used = annotations.dropna(subset=["log10_error"])
with tempfile.TemporaryDirectory(dir=os.path.dirname(out.annotations)) as tmp:
    save_annotations(
        tmp,
        {(r.key, int(r.coordinate_index), r.bodypart): (r.x, r.y) for r in used.itertuples()},
        {k: range(tracks[k].n_frames) for k in tracks},
    )
    with atomic_path(out.annotations) as target:
        os.replace(os.path.join(tmp, "error_annotations.csv"), target)
# Last: the fits read this one.
write_table(out.estimator, pd.DataFrame([estimator]))
