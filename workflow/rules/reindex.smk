# Syllables renumbered by frequency (0 = most frequent) on a copy of the delivered fit
# (the restart chosen by expected marginal likelihood, or the only one).


rule reindex_syllables:
    input:
        delivered_checkpoint(),
    output:
        checkpoint="results/model/checkpoint.h5",
        order="results/model/syllable_order.tsv",
    log:
        "results/logs/reindex_syllables.log",
    benchmark:
        "results/benchmarks/reindex_syllables.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    script:
        "../../scripts/reindex_syllables.py"
