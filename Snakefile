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
include: "workflow/rules/syllable_names.smk"


# Bookkeeping that takes a second or two (tables, decisions, summaries; no JAX, no
# keypoint-moseq): on a cluster Snakemake runs these itself instead of queueing a job each.
localrules:
    all,
    start_kappa_search,
    search_round,
    choose_kappa,
    training_set,
    clean_manifest,
    qa_summary,
    table_view,
    run_summary,
    model_provenance,
    provenance,


rule all:
    default_target: True
    input:
        final_outputs(),


onstart:
    # A week on a cluster: outages of job accounting, a Snakemake that died (common.smk).
    if workflow.executor_plugin.cli_prefix == "slurm":
        prepare_slurm_run()


onsuccess:
    # The run's short summary where users look: the end of the console output.
    if Path("results/summary.txt").exists():
        print(Path("results/summary.txt").read_text())
