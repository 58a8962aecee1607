# Final AR-HMM fit: the chosen probe continued to arhmm.num_iters (or, without a search,
# a fresh fit at arhmm.kappa). Touches JAX: gpu resource.


rule fit_arhmm:
    input:
        **final_fit_start("arhmm"),
        data="results/model/data.h5",
    output:
        "results/fits/arhmm/checkpoint.h5",
    log:
        "results/logs/fit_arhmm.log",
    benchmark:
        "results/benchmarks/fit_arhmm.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    threads: 2
    resources:
        **fit_resources(config["arhmm"]["num_iters"]),
        gpu=1,
    params:
        model=model_config(),
        kappa=None if SEARCH["enabled"] else config["arhmm"]["kappa"],
        num_iters=config["arhmm"]["num_iters"],
        seed=config["seed"],
        save_every_n_iters=config["save_every_n_iters"],
    script:
        "../../scripts/fit_arhmm.py"
