# Held-out sessions applied several per GPU job (config apply.sessions_per_job > 1): a job's
# start-up (imports, loading the compiled code) is paid once per batch, not per session
# (benchmarks/apply_batching.py). Each session is still applied on its own, with the model's
# seed, into its own file results/apply/batch_<i>/<session>.h5, so its labels are those its
# own apply_model job would give. Batches are the held-out sessions in table order, cut every
# sessions_per_job: appending a session reruns at most the last batch.
# Its helpers (batches, resources) are in common.smk.


rule apply_batch:
    input:
        unpack(calibration_input),
        checkpoint="results/model/checkpoint.h5",
        data="results/data/data.h5",
        clean=batch_clean_files,
    output:
        directory("results/apply/batch_{batch}"),
    log:
        "results/logs/apply_batch/{batch}.log",
    benchmark:
        "results/benchmarks/apply_batch/{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        "../../envs/kpms-flow.yaml"
    threads: 2
    resources:
        **batch_fit_resources(config["apply"]["num_iters"]),
        gpu=1,
    params:
        model=model_config(),
        num_iters=config["apply"]["num_iters"],
    script:
        "../../scripts/apply_batch.py"
