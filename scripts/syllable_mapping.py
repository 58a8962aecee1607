"""Rule syllable_mapping: the user's syllable names and merges as one mapping table."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.atomic import write_table
from kpms_flow.runtime import log_to
from kpms_flow.syllable_names import read_syllable_table, read_training_syllables, syllable_mapping

log = log_to(snakemake.log[0])  # noqa: F821
inp = snakemake.input  # noqa: F821

table = read_syllable_table(inp.table)
mapping = syllable_mapping(read_training_syllables(inp.results), table, inp.table)
write_table(snakemake.output[0], mapping)  # noqa: F821
merged = mapping.groupby("merged_syllable")["syllable"].apply(list)
for index, members in merged.items():
    name = mapping.loc[mapping["merged_syllable"] == index, "name"].iloc[0]
    log.info("syllable %d %r <- model syllables %s", index, name, members)
