# Final AR-HMM fit: the chosen probe continued to arhmm.num_iters (or, without a search,
# a fresh fit at arhmm.kappa). Touches JAX: gpu resource.


rule fit_arhmm:
    input:
        unpack(final_fit_inputs("arhmm")),
    output:
        checkpoint="results/fits/arhmm/checkpoint.h5",
        table="results/fits/arhmm/metrics.tsv",
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
        jitter=config["jitter"],
    script:
        "../../scripts/fit_arhmm.py"
