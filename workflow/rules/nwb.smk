# NWB export per session (results/nwb/<session>.nwb): syllable bouts (ndx-ethogram), the
# cleaned keypoints (ndx-pose), centroid, heading and the model's provenance. A session
# whose source is an NWB file gets a copy of it with these added; the source is only read.


rule export_nwb:
    input:
        session_results_h5,
        clean="results/sessions/{session}/clean.h5",
        keypoints="results/keypoints/{session}.h5",
        model="results/provenance/model.json",
        source=session_source,
        mapping=syllable_mapping_file(),
    output:
        "results/nwb/{session}.nwb",
    log:
        "results/logs/export_nwb/{session}.log",
    benchmark:
        "results/benchmarks/export_nwb/{session}.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        format=lambda wildcards: session_row(wildcards)["format"],
        animal=lambda wildcards: session_row(wildcards)["animal"],
        fps=config["fps"],
        skeleton=config["skeleton"],
        metadata=config["nwb"],
    script:
        "../../scripts/export_nwb.py"
