# Full keypoint-SLDS fit, continued from the AR-HMM checkpoint at the full-model kappa.


rule fit_full_model:
    input:
        data="results/model/data.h5",
        arhmm="results/fits/arhmm/checkpoint.h5",
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
        gpu=1,
    params:
        kappa=config["full_model"]["kappa"],
        num_iters=config["full_model"]["num_iters"],
        jitter=config["jitter"],
        save_every_n_iters=config["save_every_n_iters"],
    script:
        "../../scripts/fit_full_model.py"
