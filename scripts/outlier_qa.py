"""Rule outlier_qa: keypoint-moseq's medoid-distance outlier removal for one session."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pandas as pd

from kpms_flow.atomic import write_table
from kpms_flow.keypoints import read_session, write_session
from kpms_flow.qa import outlier_qa
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
out = snakemake.output  # noqa: F821

kp = read_session(snakemake.input[0])  # noqa: F821
p = snakemake.params  # noqa: F821
result = outlier_qa(kp, p.outlier_scale_factor, plot_path=out.plot, use_bodyparts=p.use_bodyparts)
write_session(
    out.clean,
    result.clean,
    extra={"outlier_mask": result.outlier_mask, "missing_mask": result.missing_mask},
)
write_table(out.table, pd.DataFrame([result.row]))
log.info("QA %s", result.row)
