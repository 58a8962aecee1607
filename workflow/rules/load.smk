# Load one session's pose file with keypoint-moseq's loaders, check it, normalise it.


rule load_keypoints:
    input:
        session_source,
    output:
        "results/keypoints/{session}.h5",
    log:
        "results/logs/load_keypoints/{session}.log",
    conda:
        "../../envs/kpms-flow.yaml"
    resources:
        mem_mb=light_mem_mb,
    params:
        format=lambda w: session_row(w)["format"],
        animal=lambda w: session_row(w)["animal"],
        fps=session_fps,
        video=lambda w: session_row(w)["video"],
        bodyparts=config["bodyparts"],
        use_bodyparts=config["use_bodyparts"],
        required_bodyparts=sorted(
            set(config["use_bodyparts"] or [])
            | set(config["anterior_bodyparts"])
            | set(config["posterior_bodyparts"])
        ),
        min_frames=config["min_frames"],
    script:
        "../../scripts/load_keypoints.py"
