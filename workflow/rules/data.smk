# Training data: the training set's cleaned sessions in keypoint-moseq's format_data form.


rule format_data:
    input:
        clean=clean_files(TRAIN_SESSIONS),
        training="results/qa/training_set.tsv",
    output:
        "results/data/data.h5",
    log:
        "results/logs/format_data.log",
    benchmark:
        "results/benchmarks/format_data.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    resources:
        mem_mb=light_mem_mb,
    params:
        sessions=TRAIN_SESSIONS,
        model=model_config(DATA_KEYS),
    script:
        "../../scripts/format_data.py"
