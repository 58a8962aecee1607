# Config, sessions table and the helpers the rules share.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from kpms_flow.apply_batches import apply_batches
from kpms_flow.config import WorkflowConfigError, load_workflow_config
from kpms_flow.search import probe_plan, read_decision, search_outcome

# Every config and sessions-table problem at once, before any job (kpms_flow.config).
try:
    _, SESSIONS = load_workflow_config(
        config, Path(workflow.basedir) / "workflow/schemas", note=logger.info
    )
except WorkflowConfigError as error:
    raise WorkflowError(str(error)) from None

TRAIN_SESSIONS = SESSIONS.index[SESSIONS["train"].astype(bool)].tolist()
APPLY_SESSIONS = SESSIONS.index[~SESSIONS["train"].astype(bool)].tolist()
# Membership per job: a list scan is quadratic in sessions.
TRAINED = frozenset(TRAIN_SESSIONS)
# Rows as dicts: a dict lookup per job, not a pandas row (fast DAGs at 1,000s of sessions).
SESSION_ROWS = SESSIONS.to_dict("index")


wildcard_constraints:
    session=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    stage="arhmm|full_model",
    round=r"\d+",
    probe=r"\d+",
    restart=r"\d+",


# Only the config keys that change the model; a plot option must not refit.
MODEL_KEYS = [
    "bodyparts",
    "use_bodyparts",
    "anterior_bodyparts",
    "posterior_bodyparts",
    "skeleton",
    "fps",
    "conf_pseudocount",
    "added_noise_level",
    "conf_threshold",
    "PCA_fitting_num_frames",
    "whiten",
    "fix_heading",
    "location_aware",
    "ar_hypparams",
    "trans_hypparams",
    "obs_hypparams",
    "cen_hypparams",
    "error_estimator",
]


# What keypoint-moseq's format_data and fit_pca read, so fit-only settings keep the PCA.
DATA_KEYS = [
    "bodyparts",
    "use_bodyparts",
    "anterior_bodyparts",
    "posterior_bodyparts",
    "fps",
    "conf_pseudocount",
    "added_noise_level",
]
PCA_KEYS = DATA_KEYS + ["conf_threshold", "PCA_fitting_num_frames", "fix_heading"]


# ---- noise calibration (workflow/rules/calibration.smk) ----
# With annotations configured, the jobs that hand error_estimator to keypoint-moseq read the
# calibrated slope/intercept from this file (a declared input; kpms_flow.config.kpms_config
# reads it), so new annotations rerun them and the user's config is never rewritten.
CALIBRATION = config["calibration"]
ERROR_ESTIMATOR_TSV = "results/calibration/error_estimator.tsv"

from kpms_flow.calibration import (
    CalibrationError,
    annotated_sessions,
    annotation_files,
    catalog_entry,
)

try:
    CALIBRATION_FILES = [str(p) for p in annotation_files(CALIBRATION["annotations"])]
except CalibrationError as error:
    raise WorkflowError(str(error)) from None
SESSION_CATALOG = {
    s: catalog_entry(s, row["path"], row["video"], row["animal"])
    for s, row in SESSION_ROWS.items()
}


# The labelling page's sessions: those with a video to cut frames from.
PAGE_VIDEOS = {
    s: v for s, v in SESSIONS["video"].items() if isinstance(v, str) and v.strip()
}


def calibration_keypoints(wildcards):
    """The labelled sessions' keypoints (only theirs: a new unlabelled session keeps the
    calibration, and so the fits)."""
    sessions = annotated_sessions(CALIBRATION_FILES, SESSION_CATALOG)
    return expand("results/keypoints/{session}.h5", session=sessions)


def calibration_videos(wildcards):
    sessions = annotated_sessions(CALIBRATION_FILES, SESSION_CATALOG)
    videos = {s: SESSION_ROWS[s]["video"] for s in sessions}
    return {s: v if isinstance(v, str) else "" for s, v in videos.items()}


def calibration_input(wildcards=None):
    return (
        {"error_estimator": ERROR_ESTIMATOR_TSV} if CALIBRATION["annotations"] else {}
    )


def model_config(keys=MODEL_KEYS):
    model = {key: config[key] for key in keys}
    if "error_estimator" in model and CALIBRATION["annotations"]:
        model["error_estimator"] = {"calibrated": ERROR_ESTIMATOR_TSV}
    return model


def session_row(wildcards):
    return SESSION_ROWS[wildcards.session]


def session_source(wildcards):
    return session_row(wildcards)["path"]


# One params function per rule, not one per column: Snakemake inspects and calls each params
# function of each job; at 1,000 sessions the six lambdas these replace cost 0.2 to 0.4 s of
# every dry run (benchmarks/README.md, "Dry run at scale").
def session_format_and_animal(wildcards):
    row = session_row(wildcards)
    return {"format": row["format"], "animal": row["animal"]}


def session_pose_source(wildcards):
    """What prepare_session reads a session's pose file with (kpms_flow.formats.load_session):
    its format, animal, fps (None when the table has none) and video."""
    row = session_row(wildcards)
    fps = row["fps"]  # float, NaN when empty (read_sessions_table)
    return {
        **session_format_and_animal(wildcards),
        "fps": None if fps != fps else float(fps),
        "video": row["video"],
    }


def clean_files(sessions):
    return expand("results/sessions/{session}/clean.h5", session=sessions)


def qa_tables(sessions):
    return expand("results/sessions/{session}/qa.tsv", session=sessions)


def session_results_h5(wildcards):
    """Training sessions' labels come from the fit; the others from apply_model (or
    apply_batch: applied_results below)."""
    if wildcards.session in TRAINED:
        return "results/extract/results.h5"
    return applied_results(wildcards.session)


def ground_truth_files(wildcards):
    """True-state files where they exist (or the demo makes them); sessions without one
    are left out of the NMI rather than stopping the summary."""
    if not config["ground_truth_dir"]:
        return []
    made = set(rules.demo_data.output.truth)
    files = expand(
        "{dir}/{session}.csv", dir=config["ground_truth_dir"], session=SESSIONS.index
    )
    return [f for f in files if f in made or Path(f).exists()]


def noise_model_truth(wildcards):
    """A generator's true noise model beside the true states (the demo's params.json),
    compared with the calibrated one in the run summary."""
    if not config["ground_truth_dir"] or not calibration_input():
        return []
    path = f"{config['ground_truth_dir']}/params.json"
    return (
        [path]
        if path == rules.demo_data.output.generator or Path(path).exists()
        else []
    )


def syllable_mapping_file():
    """Syllable names and merges (workflow/rules/syllable_names.smk), when configured."""
    return ["results/names/mapping.tsv"] if config["syllable_table"] else []


# NWB export (in export_session), only with config nwb.enabled. Its inputs, the NWB file
# and the params that only it reads.
def nwb_export_inputs():
    if not config["nwb"]["enabled"]:
        return {}
    return {
        "clean": "results/sessions/{session}/clean.h5",
        "model": "results/provenance/model.json",
        "source": session_source,
    }


def nwb_export_outputs():
    return {"nwb": "results/nwb/{session}.nwb"} if config["nwb"]["enabled"] else {}


def nwb_export_params():
    if not config["nwb"]["enabled"]:
        return {}
    return {
        "source": session_format_and_animal,
        "skeleton": config["skeleton"],
        "metadata": config["nwb"],
    }


def final_outputs():
    return [
        "results/summary.txt",
        "results/qa/summary.tsv",
        "results/pca/scree.png",
        "results/pca/pcs.png",
        *search_plots(),
        *selection_outputs(),
        *(
            ["results/calibration/error_vs_confidence.png"]
            if CALIBRATION["annotations"]
            else []
        ),
        *expand("results/sessions/{session}/outliers.png", session=SESSIONS.index),
        *expand("results/syllables/{session}.csv", session=SESSIONS.index),
        *report_outputs(),  # workflow/rules/report.smk
        "results/provenance.json",  # workflow/rules/provenance.smk
        *(  # written by export_session
            expand("results/nwb/{session}.nwb", session=SESSIONS.index)
            if config["nwb"]["enabled"]
            else []
        ),
    ]


def report_outputs():
    """The report's figures and tables, beyond those of the QA, PCA and search rules
    (TABLE_VIEWS, GRID and GRID_VIDEOS come from workflow/rules/report.smk)."""
    outputs = [
        "results/summary.json",
        *expand("results/figures/progress_{stage}.png", stage=STAGES),
        "results/figures/syllable_frequencies.png",
        "results/figures/syllable_durations.png",
        "results/figures/trajectories",
        "results/figures/similarity_dendrogram.png",
        "results/figures/transition_matrices.png",
        "results/groups/frequency.png",
        "results/groups/duration.png",
        *[
            f"results/report/{table}.html"
            for table in TABLE_VIEWS
            if (SEARCH["enabled"] or not table.startswith("search/"))
            and (SELECTION or not table.startswith("selection/"))
        ],
    ]
    if config["ground_truth_dir"] and ground_truth_files(None):
        outputs.append("results/figures/ground_truth_confusion.png")
    if GRID["enabled"] and GRID_VIDEOS:
        outputs.append("results/grid_movies.html")
    return outputs


# ---- kappa search (workflow/rules/search.smk) ----
SEARCH = config["kappa_search"]
STAGES = ["arhmm", "full_model"]


def search_start_inputs(wildcards):
    if wildcards.stage == "arhmm":
        return {"data": "results/data/data.h5"}
    return {"data": "results/data/data.h5", "arhmm": "results/search/arhmm/chosen.tsv"}


def round_decision(stage, round_):
    """The decision that plans round ``round_ + 1`` (round 0's is a plain rule's output;
    later ones are checkpoints, known once they ran)."""
    if round_ == 0:
        return f"results/search/{stage}/round0/decision.tsv"
    return checkpoints.search_round.get(stage=stage, round=round_).output[0]


def probe_inputs(wildcards):
    previous = int(wildcards.round) - 1
    decision = round_decision(wildcards.stage, previous)
    inputs = {
        "decision": decision,
        "data": "results/data/data.h5",
        "latent_dim": "results/pca/latent_dim.txt",
        **calibration_input(),
    }
    if wildcards.stage == "arhmm":
        inputs["pca"] = "results/pca/pca.p"
    else:
        inputs["start"] = fit_path("arhmm", 0)
    if previous > 0:
        # A probe confirmed at the stage's length continues an earlier probe's checkpoint.
        _, _, source = probe_plan(read_decision(decision)[0], int(wildcards.probe), 0)
        if source is not None:
            inputs["source"] = (
                f"results/search/{wildcards.stage}/round{source[0]}/probe{source[1]}/checkpoint.h5"
            )
    return inputs


def probe_iterations(wildcards, input):
    """A probe's iterations, from its round's decision (the probe length before it exists)."""
    try:
        decision = read_decision(input.decision)[0]
    except (FileNotFoundError, AttributeError):
        return SEARCH["num_iters"]
    return probe_plan(decision, int(wildcards.probe), SEARCH["num_iters"])[1]


def probe_checkpoint_output():
    """A probe's checkpoint: temporary unless kept. choose_kappa links the chosen one to
    results/search/<stage>/chosen_checkpoint.h5 (no copy on disk), the final fit's input;
    Snakemake then deletes the probes' own (it defers deleting temporary files while
    checkpoint jobs are pending, so none goes before the search has chosen)."""
    path = "results/search/{stage}/round{round}/probe{probe}/checkpoint.h5"
    return path if SEARCH["keep_probe_checkpoints"] else temp(path)


def probe_results(stage, rounds):
    """Each round's probe tables; a round has as many probes as its planning decision."""
    return [
        f"results/search/{stage}/round{r}/probe{p}.tsv"
        for r in rounds
        for p in range(round_probes(stage, r))
    ]


def round_probes(stage, round_):
    if round_ == 1:
        return SEARCH["probes_per_round"]
    return len(read_decision(round_decision(stage, round_ - 1))[0])


def round_inputs(wildcards):
    """A round decides from every probe so far, and knows the previous decision."""
    r = int(wildcards.round)
    return {
        "probes": probe_results(wildcards.stage, range(1, r + 1)),
        "previous": f"results/search/{wildcards.stage}/round{r - 1}/decision.tsv",
    }


def search_decisions(stage):
    """Walk the rounds' decisions until one ends the search (each is a checkpoint)."""
    decisions = []
    for r in range(1, SEARCH["max_rounds"] + 1):
        decision = checkpoints.search_round.get(stage=stage, round=r).output[0]
        decisions.append(decision)
        if search_outcome(decision).finished:
            break
    return decisions


def choose_inputs(wildcards):
    decisions = search_decisions(wildcards.stage)
    return {
        "decisions": decisions,
        "probes": probe_results(wildcards.stage, range(1, len(decisions) + 1)),
        "chosen_probe": chosen_probe_checkpoint(wildcards.stage),
    }


def chosen_probe_checkpoint(stage):
    """The checkpoint of the probe the stage's search chose (known once it ended)."""
    outcome = search_outcome(search_decisions(stage)[-1])
    return (
        f"results/search/{stage}/round{outcome.chosen_round}/"
        f"probe{outcome.chosen_probe}/checkpoint.h5"
    )


# ---- final fits and model selection (arhmm.smk, full_model.smk, selection.smk) ----
RESTARTS = list(range(config["restarts"]["num_restarts"]))
SELECTION = len(RESTARTS) > 1


def fit_path(stage, restart, name="checkpoint.h5"):
    return f"results/fits/restart_{restart}/{stage}/{name}"


def restart_seed(wildcards):
    """Restart r starts from seed + r: restart 0 is the one fit of a single-restart run."""
    return config["seed"] + int(wildcards.restart)


def continues_search(wildcards):
    """Restart 0 continues the search's chosen probe; the others start afresh."""
    return SEARCH["enabled"] and int(wildcards.restart) == 0


# Whether fresh restarts take their kappas from the search's chosen.tsv.
RESTARTS_USE_SEARCHED_KAPPA = (
    SEARCH["enabled"] and config["restarts"]["kappa"] == "searched"
)


def final_fit_inputs(stage):
    """What a stage's final fit starts from: its chosen probe (restart 0 after a search),
    or a fresh model (the AR-HMM) / the restart's own AR-HMM (the full model)."""

    def inputs(wildcards):
        start = {
            "data": "results/data/data.h5",
            "latent_dim": "results/pca/latent_dim.txt",
            **calibration_input(),
        }
        if continues_search(wildcards):
            start["chosen_probe"] = f"results/search/{stage}/chosen_checkpoint.h5"
            return start
        if stage == "arhmm":
            start["pca"] = "results/pca/pca.p"
        else:
            start["arhmm"] = fit_path("arhmm", wildcards.restart)
        if RESTARTS_USE_SEARCHED_KAPPA:
            start["searched_kappa"] = f"results/search/{stage}/chosen.tsv"
        return start

    return inputs


def final_fit_kappa(stage):
    """The kappa param: None where the chosen probe or chosen.tsv carries it."""

    def kappa(wildcards):
        if continues_search(wildcards) or RESTARTS_USE_SEARCHED_KAPPA:
            return None
        return config[stage]["kappa"]

    return kappa


def delivered_checkpoint():
    """The full-model fit that is reindexed, extracted and applied: the restart chosen by
    expected marginal likelihood, or the only one."""
    if SELECTION:
        return "results/selection/chosen_checkpoint.h5"
    return fit_path("full_model", 0)


def selection_outputs():
    if not SELECTION:
        return []
    return [
        "results/selection/eml.png",
        "results/selection/stability.png",
        "results/selection/convergence.png",
    ]


def selection_tables():
    if not SELECTION:
        return {}
    return {
        "eml": "results/selection/eml.tsv",
        "stability": "results/selection/stability.tsv",
        "pairwise": "results/selection/pairwise_nmi.tsv",
        "convergence": "results/selection/convergence.tsv",
    }


def kappa_tables():
    if not SEARCH["enabled"]:
        return []
    return expand("results/search/{stage}/chosen.tsv", stage=STAGES)


def search_plots():
    if not SEARCH["enabled"]:
        return []
    return expand("results/search/{stage}/trace.png", stage=STAGES)


# ---- job resources, planned from the data (kpms_flow.resources) ----
# Callables: Snakemake evaluates them when a job is ready, so the frame counts come from
# the files the job reads (its declared inputs); before those exist (a dry run) they give
# the base request, and they never fail a DAG.
from kpms_flow import resources as plan
from kpms_flow.runtime import legacy_runtime_message

if legacy_runtime_message(config):
    logger.warning(legacy_runtime_message(config))


def light_mem_mb(wildcards, input, attempt):
    return plan.light_mem_mb(plan.input_size_mb(input), attempt)


def fit_resources(iterations):
    """mem_mb and runtime of a job fitting ``iterations`` sweeps (a number, or a function
    of wildcards and input) over its input ``data`` (latent_dim from its input ``latent_dim``).
    """

    # Until a search's checkpoint is resolved, a fit's input is only that checkpoint:
    # named inputs may be absent, which the plan takes as "unknown".
    def frames(input):
        return plan.padded_frames(input.get("data"))

    return {
        "mem_mb": lambda wildcards, input, attempt: plan.host_mem_mb(
            frames(input), plan.planned_latent_dim(input.get("latent_dim")), attempt
        ),
        "runtime": lambda wildcards, input, attempt: plan.fit_runtime_min(
            frames(input),
            iterations(wildcards, input) if callable(iterations) else iterations,
            attempt,
        ),
    }


def session_fit_resources(iterations):
    """The same for a job over one session's ``clean`` input (apply_model)."""

    def frames(input):
        return plan.session_frames(input.clean)

    return {
        "mem_mb": lambda wildcards, input, attempt: plan.host_mem_mb(
            frames(input), plan.checkpoint_latent_dim_or_none(input.checkpoint), attempt
        ),
        "runtime": lambda wildcards, input, attempt: plan.fit_runtime_min(
            frames(input), iterations, attempt
        ),
    }


# ---- training budget (rule training_set, kpms_flow.qa.budget_exclusions) ----
# Its params only when a budget is set, so runs without one keep their params (and results).
def training_budget_params():
    if not any(v is not None for v in config["training_budget"].values()):
        return {}
    return {
        "budget": config["training_budget"],
        "groups": {s: SESSION_ROWS[s]["group"] for s in TRAIN_SESSIONS},
        "seed": config["seed"],
        "latent_dim": config["latent_dim"],
    }


# ---- cluster runs (the Snakefile's onstart calls this with the slurm executor) ----
def prepare_slurm_run():
    """Before the first submission: keep following jobs through an accounting outage and
    check job states at least every KPMS_FLOW_SLURM_STATUS_MAX_S seconds where it is set
    (kpms_flow.slurm_patches), and never submit jobs that an earlier run, whose Snakemake
    died, still runs (kpms_flow.cluster)."""
    from kpms_flow.cluster import check_no_earlier_jobs
    from kpms_flow.slurm_patches import cap_status_interval, patch_status_queries

    for problem in patch_status_queries():
        logger.warning(
            f"kpms-flow: job states are not guarded against outages: {problem}"
        )
    try:
        cap = cap_status_interval()
    except ValueError as error:
        raise WorkflowError(str(error)) from None
    if cap is not None:
        logger.info(
            f"kpms-flow: job states checked at least every {cap:g} s (KPMS_FLOW_SLURM_STATUS_MAX_S)"
        )
    try:
        check_no_earlier_jobs(Path.cwd())
    except RuntimeError as error:
        raise WorkflowError(str(error)) from None


# ---- batched apply (workflow/rules/apply_batch.smk, config apply.sessions_per_job) ----
SESSIONS_PER_APPLY_JOB = config["apply"]["sessions_per_job"]
APPLY_BATCHES = apply_batches(APPLY_SESSIONS, SESSIONS_PER_APPLY_JOB)
APPLY_BATCH_OF = {s: i for i, batch in enumerate(APPLY_BATCHES) for s in batch}


def applied_results(session):
    """Where a held-out session's results are: its apply_model file, or its batch's folder."""
    if SESSIONS_PER_APPLY_JOB == 1:
        return f"results/apply/{session}.h5"
    return f"results/apply/batch_{APPLY_BATCH_OF[session]}"


def batch_clean_files(wildcards):
    return clean_files(APPLY_BATCHES[int(wildcards.batch)])


def batch_fit_resources(iterations):
    """mem_mb for the batch's largest session (one at a time in memory), runtime for all."""

    def frames(input):
        return [plan.session_frames(path) for path in input.clean]

    return {
        "mem_mb": lambda wildcards, input, attempt: plan.host_mem_mb(
            max(frames(input), key=lambda n: n or 0),
            plan.checkpoint_latent_dim_or_none(input.checkpoint),
            attempt,
        ),
        "runtime": lambda wildcards, input, attempt: plan.fit_runtime_min(
            sum(n or 0 for n in frames(input)), iterations, attempt
        ),
    }
