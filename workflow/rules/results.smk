# Per-session results: training sessions from the fit, the others from apply_model.


rule extract_results:
    input:
        unpack(calibration_input),
        checkpoint="results/model/checkpoint.h5",
        data="results/data/data.h5",
        latent_dim="results/pca/latent_dim.txt",
        training="results/qa/training_set.tsv",
        clean_files="results/qa/clean_files.tsv",
    output:
        "results/extract/results.h5",
    log:
        "results/logs/extract_results.log",
    benchmark:
        "results/benchmarks/extract_results.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    threads: 2
    resources:
        **fit_resources(config["apply"]["num_iters"]),
        gpu=1,
    params:
        model=model_config(),
        num_iters=config["apply"]["num_iters"],
    script:
        "../../scripts/extract_results.py"


rule apply_model:
    input:
        unpack(calibration_input),
        checkpoint="results/model/checkpoint.h5",
        data="results/data/data.h5",
        clean="results/sessions/{session}/clean.h5",
    output:
        "results/apply/{session}.h5",
    log:
        "results/logs/apply_model/{session}.log",
    benchmark:
        "results/benchmarks/apply_model/{session}.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    threads: 2
    resources:
        **session_fit_resources(config["apply"]["num_iters"]),
        gpu=1,
    params:
        model=model_config(),
        num_iters=config["apply"]["num_iters"],
    script:
        "../../scripts/apply_model.py"


# One job per session publishes its results: the CSV table and, with config nwb.enabled, the
# NWB file (syllable bouts as ndx-ethogram, the cleaned keypoints as ndx-pose, centroid,
# heading and the model's provenance; an NWB source gets a copy with these added, the source
# is only read). One job, not two: each job costs a Python start when it runs and Snakemake's
# per-job work in every dry run (benchmarks/README.md, "Dry run at scale").
rule export_session:
    input:
        session_results_h5,
        **nwb_export_inputs(),
        keypoints="results/keypoints/{session}.h5",
        mapping=syllable_mapping_file(),
    output:
        **nwb_export_outputs(),
        csv="results/syllables/{session}.csv",
    log:
        "results/logs/export_session/{session}.log",
    benchmark:
        "results/benchmarks/export_session/{session}.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        **nwb_export_params(),
        fps=config["fps"],
    script:
        "../../scripts/export_session.py"


# keypoint-moseq's FAQ: applied labels can differ from the fit's; re-applying the model to
# every session gives labels from one procedure. Only on request: snakemake reapply_all
use rule apply_model as reapply_model with:
    output:
        "results/reapply/{session}.h5",
    log:
        "results/logs/reapply_model/{session}.log",
    benchmark:
        "results/benchmarks/reapply_model/{session}.tsv"


rule reapply_all:
    input:
        expand("results/reapply/{session}.h5", session=SESSIONS.index),
