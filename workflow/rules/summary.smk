# Run summary over all sessions: durations, syllables, NMI against ground truth if known.


rule run_summary:
    input:
        syllables=expand("results/syllables/{session}.csv", session=SESSIONS.index),
        training="results/model/training_sessions.tsv",
        data="results/model/data.h5",
        latent_dim="results/pca/latent_dim.txt",
        qa="results/qa/summary.tsv",
        ground_truth=ground_truth_files,
    output:
        table="results/summary.tsv",
        text="results/summary.txt",
    log:
        "results/logs/run_summary.log",
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        train_sessions=TRAIN_SESSIONS,
        kappa={
            "arhmm": config["arhmm"]["kappa"],
            "full_model": config["full_model"]["kappa"],
        },
    script:
        "../../scripts/run_summary.py"
