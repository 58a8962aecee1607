# AR-HMM fit (latent dynamics only) at the configured kappa. Touches JAX: gpu resource.


rule fit_arhmm:
    input:
        data="results/model/data.h5",
        pca="results/pca/pca.p",
        latent_dim="results/pca/latent_dim.txt",
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
        gpu=1,
    params:
        model=model_config(),
        kappa=config["arhmm"]["kappa"],
        num_iters=config["arhmm"]["num_iters"],
        seed=config["seed"],
        save_every_n_iters=config["save_every_n_iters"],
    script:
        "../../scripts/fit_arhmm.py"
