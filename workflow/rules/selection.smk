# Model selection over the restarts (config restarts.num_restarts > 1), as keypoint-moseq's
# docs recommend: expected marginal likelihood (EML) chooses the delivered model; the
# restarts' agreement (stability) and every fit's log-likelihood trace (convergence) are
# reported beside it. Touches JAX (keypoint-moseq's marginal likelihood): gpu resource.


rule select_model:
    input:
        checkpoints=[fit_path("full_model", r) for r in RESTARTS],
        metrics=[fit_path("full_model", r, "metrics.tsv") for r in RESTARTS],
        data="results/data/data.h5",
        latent_dim="results/pca/latent_dim.txt",  # for the memory plan
    output:
        eml="results/selection/eml.tsv",
        eml_plot=report(
            "results/selection/eml.png",
            caption="../report/selection_eml.rst",
            category="Model selection",
            labels={"figure": "expected marginal likelihood"},
        ),
        stability="results/selection/stability.tsv",
        pairwise="results/selection/pairwise_nmi.tsv",
        stability_plot=report(
            "results/selection/stability.png",
            caption="../report/selection_stability.rst",
            category="Model selection",
            labels={"figure": "stability across restarts"},
        ),
        convergence="results/selection/convergence.tsv",
        convergence_plot=report(
            "results/selection/convergence.png",
            caption="../report/selection_convergence.rst",
            category="Model selection",
            labels={"figure": "convergence"},
        ),
        chosen="results/selection/chosen_checkpoint.h5",
    log:
        "results/logs/select_model.log",
    benchmark:
        "results/benchmarks/select_model.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    threads: 2
    resources:
        # N x (N - 1) marginal likelihoods, each cheaper than one sweep: a safe bound
        **fit_resources(len(RESTARTS) * (len(RESTARTS) - 1)),
        gpu=1,
    params:
        restarts=[f"restart_{r}" for r in RESTARTS],
        seeds=[config["seed"] + r for r in RESTARTS],
        target_duration_ms=SEARCH["target_duration_ms"],
    script:
        "../../scripts/select_model.py"
