# Report figures and tables: keypoint-moseq's own plots drawn from the pipeline's files.
# `snakemake --report report.html` gathers them with the QA, PCA and kappa-search items.
import re

PLOTS = config["plots"]
GRID = config["grid_movies"]
# Grid movies cut the training sessions' videos (sessions table column "video").
GRID_VIDEOS = {
    s: SESSION_ROWS[s]["video"] for s in TRAIN_SESSIONS if SESSION_ROWS[s]["video"]
}
# Tables shown as HTML in the report: results/<table>.tsv -> report category.
TABLE_VIEWS = {
    "qa/summary": "Quality control",
    "search/arhmm/trace": "Kappa search",
    "search/full_model/trace": "Kappa search",
    "selection/eml": "Model selection",
    "selection/stability": "Model selection",
    "summary": "Run summary",
    "groups/stats_df": "Groups",
}


rule plot_progress:
    input:
        # restart 0: the search's continued chain (every restart's trace: convergence.png)
        checkpoint=fit_path("{stage}", 0),
        data="results/data/data.h5",
    output:
        report(
            "results/figures/progress_{stage}.png",
            caption="../report/progress.rst",
            category="Model fitting",
            labels={"stage": "{stage}", "figure": "fitting progress"},
        ),
    log:
        "results/logs/plot_progress/{stage}.log",
    benchmark:
        "results/benchmarks/plot_progress/{stage}.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        dpi=PLOTS["dpi"],
    script:
        "../../scripts/plot_progress.py"


rule plot_syllables:
    input:
        results="results/extract/results.h5",
        data="results/data/data.h5",
    output:
        frequencies=report(
            "results/figures/syllable_frequencies.png",
            caption="../report/syllable_frequencies.rst",
            category="Syllables",
            labels={"figure": "frequencies"},
        ),
        durations=report(
            "results/figures/syllable_durations.png",
            caption="../report/syllable_durations.rst",
            category="Syllables",
            labels={"figure": "durations"},
        ),
    log:
        "results/logs/plot_syllables.log",
    benchmark:
        "results/benchmarks/plot_syllables.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        min_frequency=PLOTS["min_frequency"],
        dpi=PLOTS["dpi"],
    script:
        "../../scripts/plot_syllables.py"


rule plot_trajectories:
    input:
        results="results/extract/results.h5",
        data="results/data/data.h5",
        clean=clean_files(TRAIN_SESSIONS),
    output:
        trajectories=report(
            directory("results/figures/trajectories"),
            patterns=["{name}.png"],
            caption="../report/trajectories.rst",
            category="Syllables",
            subcategory="Trajectories",
            labels={"figure": "{name}"},
        ),
        dendrogram=report(
            "results/figures/similarity_dendrogram.png",
            caption="../report/dendrogram.rst",
            category="Syllables",
            labels={"figure": "similarity dendrogram"},
        ),
    log:
        "results/logs/plot_trajectories.log",
    benchmark:
        "results/benchmarks/plot_trajectories.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        model=model_config(DATA_KEYS + ["skeleton"]),
        min_frequency=PLOTS["min_frequency"],
        dpi=PLOTS["dpi"],
    script:
        "../../scripts/plot_trajectories.py"


rule group_statistics:
    input:
        results="results/extract/results.h5",
        applied=list(dict.fromkeys(map(applied_results, APPLY_SESSIONS))),
        data="results/data/data.h5",
    output:
        stats="results/groups/stats_df.tsv",
        frequency=report(
            "results/groups/frequency.png",
            caption="../report/group_stats.rst",
            category="Groups",
            labels={"figure": "frequency by group"},
        ),
        duration=report(
            "results/groups/duration.png",
            caption="../report/group_stats.rst",
            category="Groups",
            labels={"figure": "duration by group"},
        ),
        transitions=report(
            "results/figures/transition_matrices.png",
            caption="../report/transitions.rst",
            category="Syllables",
            labels={"figure": "transition matrices"},
        ),
    log:
        "results/logs/group_statistics.log",
    benchmark:
        "results/benchmarks/group_statistics.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        groups={s: row["group"] for s, row in SESSION_ROWS.items()},
        min_frequency=PLOTS["min_frequency"],
        dpi=PLOTS["dpi"],
    script:
        "../../scripts/group_statistics.py"


rule plot_ground_truth:
    input:
        syllables=expand("results/syllables/{session}.csv", session=SESSIONS.index),
        ground_truth=ground_truth_files,
    output:
        report(
            "results/figures/ground_truth_confusion.png",
            caption="../report/ground_truth.rst",
            category="Run summary",
            labels={"figure": "syllables vs true states"},
        ),
    log:
        "results/logs/plot_ground_truth.log",
    benchmark:
        "results/benchmarks/plot_ground_truth.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        ground_truth_dir=config["ground_truth_dir"],
        min_frequency=PLOTS["min_frequency"],
        dpi=PLOTS["dpi"],
    script:
        "../../scripts/plot_ground_truth.py"


rule grid_movies:
    input:
        results="results/extract/results.h5",
        data="results/data/data.h5",
        clean=clean_files(list(GRID_VIDEOS)),
        videos=list(GRID_VIDEOS.values()),
    output:
        movies=directory("results/grid_movies"),
        gallery=report(
            "results/grid_movies.html",
            caption="../report/grid_movies.rst",
            category="Syllables",
            labels={"figure": "grid movies"},
        ),
    log:
        "results/logs/grid_movies.log",
    benchmark:
        "results/benchmarks/grid_movies.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        videos=GRID_VIDEOS,
        options={k: v for k, v in GRID.items() if k != "enabled"},
        model=model_config(DATA_KEYS + ["skeleton"]),
    script:
        "../../scripts/grid_movies.py"


rule table_view:
    input:
        "results/{table}.tsv",
    output:
        report(
            "results/report/{table}.html",
            caption="../report/table_view.rst",
            category=lambda wildcards: TABLE_VIEWS[wildcards.table],
            labels={"table": "{table}"},
        ),
    log:
        "results/logs/table_view/{table}.log",
    wildcard_constraints:
        table="|".join(re.escape(t) for t in TABLE_VIEWS),
    conda:
        "../../envs/kpms-flow.yaml"
    script:
        "../../scripts/table_view.py"
