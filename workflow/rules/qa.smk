# Outlier QA per session, and the summary that decides which sessions train the model.


rule outlier_qa:
    input:
        "results/sessions/{session}/keypoints.h5",
    output:
        clean="results/sessions/{session}/clean.h5",
        table="results/sessions/{session}/qa.tsv",
        plot=report(
            "results/sessions/{session}/outliers.png",
            caption="../report/outliers.rst",
            category="Quality control",
            labels={"session": "{session}", "figure": "outliers"},
        ),
    log:
        "results/logs/outlier_qa/{session}.log",
    conda:
        "../../envs/kpms-flow.yaml"
    resources:
        mem_mb=light_mem_mb,
    params:
        outlier_scale_factor=config["outlier_scale_factor"],
        use_bodyparts=config["use_bodyparts"],
    script:
        "../../scripts/outlier_qa.py"


rule qa_summary:
    input:
        qa_tables(SESSIONS.index),
    output:
        report(
            "results/qa/summary.tsv",
            caption="../report/qa_summary.rst",
            category="Quality control",
        ),
    log:
        "results/logs/qa_summary.log",
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        train={s: bool(t) for s, t in SESSIONS["train"].items()},
        thresholds=config["qa"],
    script:
        "../../scripts/qa_summary.py"
