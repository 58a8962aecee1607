# kpms-flow: pose-tracking files in, Keypoint-MoSeq syllables out.
#   snakemake -n                                   what would run
#   snakemake --profile profiles/local             run on this machine
#   snakemake --configfile config/demo.yaml ...    the embedded demo
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/load.smk"
include: "workflow/rules/qa.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/calibration.smk"
include: "workflow/rules/pca.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/arhmm.smk"
include: "workflow/rules/full_model.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/reindex.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/apply_batch.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/nwb.smk"
include: "workflow/rules/syllable_names.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


onsuccess:
    # The run's short summary where users look: the end of the console output.
    if Path("results/summary.txt").exists():
        print(Path("results/summary.txt").read_text())
