# results/provenance.json: which versions, settings, seeds, sessions (and their source
# hashes), kappas and model produced the results. Cheap (reads attributes and hashes one
# model file); nothing depends on it but the report, so a config change reruns only this.


rule provenance:
    input:
        model="results/model/checkpoint.h5",
        training="results/qa/training_set.tsv",
        keypoints=expand("results/keypoints/{session}.h5", session=SESSIONS.index),
        syllables=expand("results/syllables/{session}.csv", session=SESSIONS.index),
        kappa=kappa_tables(),
        fits=expand("results/fits/{stage}/metrics.tsv", stage=STAGES),
    output:
        report(
            "results/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"file": "provenance.json"},
        ),
    log:
        "results/logs/provenance.log",
    benchmark:
        "results/benchmarks/provenance.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        # The effective config (defaults filled in): a changed setting reruns this rule.
        config=config,
        train_sessions=TRAIN_SESSIONS,
        kappa=(
            {}
            if SEARCH["enabled"]
            else {stage: config[stage]["kappa"] for stage in STAGES}
        ),
    script:
        "../../scripts/provenance.py"
