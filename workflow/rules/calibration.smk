# Noise calibration: keypoint-moseq's error_estimator (slope, intercept) fitted from labels
# the user already has, as its notebook widget fits them. Only with calibration.annotations;
# the fits read the table through model_config() (workflow/rules/common.smk).
rule noise_calibration:
    input:
        annotations=CALIBRATION_FILES,
        keypoints=calibration_keypoints,
    output:
        estimator=ERROR_ESTIMATOR_TSV,
        annotations="results/calibration/error_annotations.csv",
        measured="results/calibration/measured_errors.tsv",
    log:
        "results/logs/noise_calibration.log",
    benchmark:
        "results/benchmarks/noise_calibration.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    resources:
        mem_mb=light_mem_mb,
    params:
        videos=calibration_videos,
        conf_pseudocount=config["conf_pseudocount"],
        conf_threshold=config["conf_threshold"],
        min_annotations=CALIBRATION["min_annotations"],
    script:
        "../../scripts/noise_calibration.py"


# Its own rule: a plot option must not refit (the fits read error_estimator.tsv).
rule plot_calibration:
    input:
        estimator=ERROR_ESTIMATOR_TSV,
        measured="results/calibration/measured_errors.tsv",
    output:
        report(
            "results/calibration/error_vs_confidence.png",
            caption="../report/calibration.rst",
            category="Noise calibration",
        ),
    log:
        "results/logs/plot_calibration.log",
    benchmark:
        "results/benchmarks/plot_calibration.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        dpi=config["plots"]["dpi"],
    script:
        "../../scripts/plot_calibration.py"


# Target only (snakemake results/calibration/labelling.html): a page to label frames in a
# browser where no labels exist; its saved CSV goes into calibration.annotations.
rule calibration_page:
    input:
        keypoints=expand("results/keypoints/{session}.h5", session=PAGE_VIDEOS),
        videos=list(PAGE_VIDEOS.values()),
    output:
        "results/calibration/labelling.html",
    log:
        "results/logs/calibration_page.log",
    benchmark:
        "results/benchmarks/calibration_page.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        videos=PAGE_VIDEOS,
        use_bodyparts=config["use_bodyparts"],
        seed=config["seed"],
        num_samples=CALIBRATION["page_samples"],
        conf_pseudocount=config["conf_pseudocount"],
    script:
        "../../scripts/calibration_page.py"
