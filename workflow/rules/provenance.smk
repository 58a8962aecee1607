# What produced the results. results/provenance/model.json: the delivered model's hash,
# kappas, seeds and software versions (the NWB files embed it; a new session leaves it
# alone). results/provenance.json adds the sessions with their source hashes and the
# effective config. Both are cheap and nothing but the report and the NWB export reads
# them, so a changed setting reruns only these.
from kpms_flow.provenance import find_seeds


rule model_provenance:
    input:
        model="results/model/checkpoint.h5",
        kappa=kappa_tables(),
        # every restart's fits; the delivered one is the selection's choice (or restart 0)
        fits=[fit_path(stage, r, "metrics.tsv") for r in RESTARTS for stage in STAGES],
        selection=["results/selection/eml.tsv"] if SELECTION else [],
    output:
        "results/provenance/model.json",
    log:
        "results/logs/model_provenance.log",
    benchmark:
        "results/benchmarks/model_provenance.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        seeds=find_seeds(config),
        kappa=(
            {}
            if SEARCH["enabled"]
            else {stage: config[stage]["kappa"] for stage in STAGES}
        ),
    script:
        "../../scripts/model_provenance.py"


rule provenance:
    input:
        model="results/provenance/model.json",
        training="results/qa/training_set.tsv",
        keypoints=expand("results/keypoints/{session}.h5", session=SESSIONS.index),
        syllables=expand("results/syllables/{session}.csv", session=SESSIONS.index),
    output:
        report(
            "results/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"file": "provenance.json"},
        ),
    log:
        "results/logs/provenance.log",
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        # The effective config (defaults filled in): a changed setting reruns this rule.
        config=config,
        train_sessions=TRAIN_SESSIONS,
    script:
        "../../scripts/provenance.py"
