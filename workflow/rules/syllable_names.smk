# Syllable names and merges from the user's table (config key syllable_table): one mapping
# from the model's syllables to merged, named ones (keypoint-moseq's
# generate_syllable_mapping over the training sessions). The CSVs and NWB files apply it to
# copies of the results; the model and results.h5 stay as fitted.


rule syllable_mapping:
    input:
        table=config["syllable_table"] or [],
        results="results/extract/results.h5",
    output:
        "results/names/mapping.tsv",
    log:
        "results/logs/syllable_mapping.log",
    benchmark:
        "results/benchmarks/syllable_mapping.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    script:
        "../../scripts/syllable_mapping.py"
