# One session's pose file: loaded with keypoint-moseq's loaders, checked and normalised, then
# cleaned by keypoint-moseq's outlier removal. One job, not two: each would import
# keypoint-moseq (6-9 s) for under a second of work (benchmarks/README.md, issue 18).


rule prepare_session:
    input:
        session_source,
    output:
        keypoints="results/keypoints/{session}.h5",
        clean="results/sessions/{session}/clean.h5",
        table="results/sessions/{session}/qa.tsv",
        plot=report(
            "results/sessions/{session}/outliers.png",
            caption="../report/outliers.rst",
            category="Quality control",
            labels={"session": "{session}", "figure": "outliers"},
        ),
    log:
        "results/logs/prepare_session/{session}.log",
    benchmark:
        "results/benchmarks/prepare_session/{session}.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    resources:
        mem_mb=light_mem_mb,
    params:
        source=session_pose_source,
        bodyparts=config["bodyparts"],
        use_bodyparts=config["use_bodyparts"],
        required_bodyparts=sorted(
            set(config["use_bodyparts"] or [])
            | set(config["anterior_bodyparts"])
            | set(config["posterior_bodyparts"])
        ),
        min_frames=config["min_frames"],
        outlier_scale_factor=config["outlier_scale_factor"],
    script:
        "../../scripts/prepare_session.py"
