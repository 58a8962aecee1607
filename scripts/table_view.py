"""Rule table_view: a readable HTML view of a results table for the report."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pandas as pd

from kpms_flow.atomic import write_text
from kpms_flow.plots import table_html
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
table = pd.read_csv(snakemake.input[0], sep="\t", keep_default_na=False)  # noqa: F821
if len(table) == 1:
    # A one-row table (the run summary) reads better as field / value pairs.
    values = [f"{v:.4g}" if isinstance(v, float) else v for v in table.iloc[0]]
    table = pd.DataFrame({"field": table.columns, "value": values})
write_text(snakemake.output[0], table_html(table, snakemake.input[0]))  # noqa: F821
log.info("%s: %d rows", snakemake.input[0], len(table))  # noqa: F821
