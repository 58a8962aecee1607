# Final full-model fits, one per restart: restart 0 continues the chosen probe to
# full_model.num_iters (without a search: its AR-HMM continued at full_model.kappa);
# restart r continues its own AR-HMM at the searched (or fixed) kappa, as keypoint-moseq's
# notebook does. Touches JAX: gpu resource.


rule fit_full_model:
    input:
        unpack(final_fit_inputs("full_model")),
    output:
        checkpoint="results/fits/restart_{restart}/full_model/checkpoint.h5",
        table="results/fits/restart_{restart}/full_model/metrics.tsv",
    log:
        "results/logs/fit_full_model/restart_{restart}.log",
    benchmark:
        "results/benchmarks/fit_full_model/restart_{restart}.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    threads: 2
    resources:
        **fit_resources(config["full_model"]["num_iters"]),
        gpu=1,
    params:
        model=model_config(),
        kappa=final_fit_kappa("full_model"),
        num_iters=config["full_model"]["num_iters"],
        seed=restart_seed,
        save_every_n_iters=config["save_every_n_iters"],
        jitter=config["jitter"],
    script:
        "../../scripts/fit_full_model.py"
