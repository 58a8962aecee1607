# Which sessions train the model (from each session's QA, rule prepare_session), and the
# QA summary.


# The one decider of the training set: only training sessions' QA feeds it, so adding a
# train: false session changes nothing upstream of the model.
rule training_set:
    input:
        qa_tables(TRAIN_SESSIONS),
    output:
        "results/qa/training_set.tsv",
    log:
        "results/logs/training_set.log",
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        **training_budget_params(),
        thresholds=config["qa"],
    script:
        "../../scripts/training_set.py"


# extract_results' hand-off from the QA stage: one file, not one per training session.
rule clean_manifest:
    input:
        clean_files(TRAIN_SESSIONS),
    output:
        "results/qa/clean_files.tsv",
    log:
        "results/logs/clean_manifest.log",
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        sessions=TRAIN_SESSIONS,
    script:
        "../../scripts/clean_manifest.py"


rule qa_summary:
    input:
        qa=qa_tables(SESSIONS.index),
        training="results/qa/training_set.tsv",
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
