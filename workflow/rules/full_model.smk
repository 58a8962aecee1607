# Final full-model fit: the chosen probe continued to full_model.num_iters (or, without a
# search, the AR-HMM fit continued at full_model.kappa). Touches JAX: gpu resource.


rule fit_full_model:
    input:
        **final_fit_start("full_model"),
        data="results/model/data.h5",
    output:
        "results/fits/full_model/checkpoint.h5",
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
        kappa=None if SEARCH["enabled"] else config["full_model"]["kappa"],
        num_iters=config["full_model"]["num_iters"],
        jitter=config["jitter"],
        save_every_n_iters=config["save_every_n_iters"],
    script:
        "../../scripts/fit_full_model.py"
