# Run summary over all sessions: durations, syllables, NMI against ground truth if known;
# a table, JSON with per-session details, and a short text printed at the end of a run.


rule run_summary:
    input:
        **selection_tables(),
        syllables=expand("results/syllables/{session}.csv", session=SESSIONS.index),
        training="results/qa/training_set.tsv",
        data="results/data/data.h5",
        latent_dim="results/pca/latent_dim.txt",
        variance="results/pca/variance.tsv",
        qa="results/qa/summary.tsv",
        ground_truth=ground_truth_files,
        # the noise calibration's table (none without it), compared with a generator's truth
        calibration=lambda wildcards: calibration_input().get("error_estimator", []),
        noise_truth=noise_model_truth,
        kappa=kappa_tables(),
        # restart 0's fits: the search's chain, checked against its chosen probes
        fits=[fit_path(stage, 0, "metrics.tsv") for stage in STAGES],
    output:
        table="results/summary.tsv",
        json="results/summary.json",
        text="results/summary.txt",
    log:
        "results/logs/run_summary.log",
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        train_sessions=TRAIN_SESSIONS,
        target_duration_ms=SEARCH["target_duration_ms"],
        kappa=(
            {}
            if SEARCH["enabled"]
            else {stage: config[stage]["kappa"] for stage in STAGES}
        ),
    script:
        "../../scripts/run_summary.py"
