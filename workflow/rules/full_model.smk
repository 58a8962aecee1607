# Final full-model fit: the chosen probe continued to full_model.num_iters (or, without a
# search, the AR-HMM fit continued at full_model.kappa). Touches JAX: gpu resource.


rule fit_full_model:
    input:
        unpack(final_fit_inputs("full_model")),
    output:
        checkpoint="results/fits/full_model/checkpoint.h5",
        table="results/fits/full_model/metrics.tsv",
    log:
        "results/logs/fit_full_model.log",
    benchmark:
        "results/benchmarks/fit_full_model.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    threads: 2
    resources:
        **fit_resources(config["full_model"]["num_iters"]),
        gpu=1,
    params:
        model=model_config(),
        kappa=None if SEARCH["enabled"] else config["full_model"]["kappa"],
        num_iters=config["full_model"]["num_iters"],
        seed=config["seed"],
        save_every_n_iters=config["save_every_n_iters"],
        jitter=config["jitter"],
    script:
        "../../scripts/fit_full_model.py"
