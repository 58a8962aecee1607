"""Rule plot_calibration: measured keypoint error against confidence with the fitted line."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pandas as pd

from kpms_flow.atomic import save_figure
from kpms_flow.calibration import calibration_figure
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

estimator = pd.read_csv(inp.estimator, sep="\t").iloc[0].to_dict()
measured = pd.read_csv(inp.measured, sep="\t")
save_figure(out[0], calibration_figure(measured, estimator), dpi=p.dpi)
log.info("drew %d annotations", len(measured))
