# PCA of the training data; latent_dim is written to a file.


rule fit_pca:
    input:
        "results/data/data.h5",
    output:
        pca="results/pca/pca.p",
        latent_dim="results/pca/latent_dim.txt",
        variance="results/pca/variance.tsv",
    log:
        "results/logs/fit_pca.log",
    benchmark:
        "results/benchmarks/fit_pca.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    resources:
        mem_mb=light_mem_mb,
    params:
        model=model_config(PCA_KEYS),
        latent_dim=config["latent_dim"],
        variance_threshold=config["pca_variance_threshold"],
    script:
        "../../scripts/fit_pca.py"


rule plot_pca:
    input:
        pca="results/pca/pca.p",
        data="results/data/data.h5",
    output:
        scree=report(
            "results/pca/scree.png",
            caption="../report/scree.rst",
            category="PCA",
        ),
        pcs=report(
            "results/pca/pcs.png",
            caption="../report/pcs.rst",
            category="PCA",
        ),
    log:
        "results/logs/plot_pca.log",
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        model=model_config(PCA_KEYS + ["skeleton"]),
        dpi=config["plots"]["dpi"],
    script:
        "../../scripts/plot_pca.py"
