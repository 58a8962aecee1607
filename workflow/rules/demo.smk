# The embedded demo: synthetic sessions with known states, written as DeepLabCut .h5.
# Only runs when the sessions table points at demo/data (config/demo.yaml). The videos
# are the true poses drawn in the arena, so that grid movies have footage to cut.

# The demo's shape: 5 sessions of 1 minute at 30 fps (enough for a 25-state model to find
# its syllables on 2 CPU cores in minutes), one held out to exercise apply_model.
DEMO = {
    "names": [f"demo_{i:02d}" for i in range(1, 6)],
    "n_sessions": 5,
    "n_frames": 1800,
    "fps": 30.0,
    "seed": 0,
    "n_heldout": 1,
}


rule demo_data:
    output:
        pose=expand(
            "demo/data/pose/{name}DLC_resnet50_demoSep1shuffle1_1000.h5",
            name=DEMO["names"],
        ),
        truth=expand("demo/data/ground_truth/{name}.csv", name=DEMO["names"]),
        # the generator's settings, its noise model included (the run summary compares)
        generator="demo/data/ground_truth/params.json",
        video=expand("demo/data/video/{name}.mp4", name=DEMO["names"]),
        # Labelled frames (true positions) for the noise calibration (config/demo.yaml).
        labels=expand(
            "demo/data/labeled-data/{name}/CollectedData_demo.h5", name=DEMO["names"]
        ),
    log:
        "results/logs/demo_data.log",
    benchmark:
        "results/benchmarks/demo_data.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        **{k: v for k, v in DEMO.items() if k != "names"},
        videos=True,  # drawn from the true poses: the grid-movie path is tested
    script:
        "../../scripts/demo_data.py"
