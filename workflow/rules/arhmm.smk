# Final AR-HMM fits, one per restart: restart 0 continues the chosen probe to
# arhmm.num_iters (without a search: a fresh fit at arhmm.kappa); restart r starts afresh
# from seed + r at the searched (or fixed) kappa. Touches JAX: gpu resource.


rule fit_arhmm:
    input:
        unpack(final_fit_inputs("arhmm")),
    output:
        checkpoint="results/fits/restart_{restart}/arhmm/checkpoint.h5",
        table="results/fits/restart_{restart}/arhmm/metrics.tsv",
    log:
        "results/logs/fit_arhmm/restart_{restart}.log",
    benchmark:
        "results/benchmarks/fit_arhmm/restart_{restart}.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    threads: 2
    resources:
        **fit_resources(config["arhmm"]["num_iters"]),
        gpu=1,
    params:
        model=model_config(),
        kappa=final_fit_kappa("arhmm"),
        num_iters=config["arhmm"]["num_iters"],
        seed=restart_seed,
        save_every_n_iters=config["save_every_n_iters"],
        jitter=config["jitter"],
    script:
        "../../scripts/fit_arhmm.py"
