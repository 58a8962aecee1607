# Training data: the training set's cleaned sessions in keypoint-moseq's format_data form,
# and their PCA (latent_dim written to a file). One job, not two: each would import
# keypoint-moseq (6-9 s) for under a second of work (benchmarks/README.md, issue 18).


rule prepare_training_data:
    input:
        clean=clean_files(TRAIN_SESSIONS),
        training="results/qa/training_set.tsv",
    output:
        data="results/data/data.h5",
        pca="results/pca/pca.p",
        latent_dim="results/pca/latent_dim.txt",
        variance="results/pca/variance.tsv",
    log:
        "results/logs/prepare_training_data.log",
    benchmark:
        "results/benchmarks/prepare_training_data.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    resources:
        mem_mb=light_mem_mb,
    params:
        sessions=TRAIN_SESSIONS,
        # keypoint-moseq's format_data and fit_pca take one config (each ignores the other's keys)
        model=model_config(PCA_KEYS),
        latent_dim=config["latent_dim"],
        variance_threshold=config["pca_variance_threshold"],
    script:
        "../../scripts/prepare_training_data.py"


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
    benchmark:
        "results/benchmarks/plot_pca.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        model=model_config(PCA_KEYS + ["skeleton"]),
        dpi=config["plots"]["dpi"],
    script:
        "../../scripts/plot_pca.py"
