"""``kpms-flow-plan``: what a run will train on, hold in GPU memory and cost, before it starts.

For the sessions table and config it prints the training frames after QA's frame minimum
and the training budget (the workflow's own :func:`kpms_flow.qa.training_set`), the GPU
memory plan of the full-model fit (:func:`kpms_flow.resources.plan_fit_memory`), the GPU
jobs by kind, and an estimate of GPU-hours.

Frames per session, best source first: the workflow's normalised session file
(``results/sessions/<s>/clean.h5``, its shape only), the pose file itself (loaded as the
workflow loads it), a ``frames`` column in the sessions table, else the median of the
known sessions (marked as an estimate). QA's nan and outlier thresholds need the data: a
session whose ``results/sessions/<s>/qa.tsv`` exists is decided on its QA row, the others
are assumed to pass them.

GPU-hours come from per-sweep costs (constants below, with their sources). No GPU rate
has been measured yet (benchmarks/README.md, "GPU check": not yet run), so the default
rate is the CPU's: an upper bound, marked as such in the output; ``--seconds-per-frame-iter``
takes a measured GPU rate.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import resources
from .keypoints import InputError

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "workflow" / "schemas"

# Wall seconds per frame and sweep: the full-model sweep rate measured on this project's
# 2-core CPU (resources.SECONDS_PER_FRAME_ITER: demo, 7,200 frames; the 50,000-frame CPU
# check's later sweeps took 2.5 to 4.9 s, 50 to 100 us per frame, benchmarks/README.md).
# Used for AR-HMM sweeps too, which are cheaper: an upper bound there.
CPU_SECONDS_PER_FRAME_ITER = resources.SECONDS_PER_FRAME_ITER
# Start-up of one GPU job (imports, JIT with a warm compile cache, checkpoint I/O): the
# full-model stage of the GPU check's CPU fallback, warm cache, 5 sweeps of 600 frames:
# 93.4 s (benchmarks/README.md, "GPU check"); nearly all of it is compilation.
JOB_STARTUP_S = 93.4


@dataclass
class JobKind:
    """One kind of GPU job: how many, and the frame-sweeps and time they need."""

    rule: str
    jobs: int
    what: str
    frame_iters: float  # frames x sweeps, all jobs together
    jobs_upper_bound: int | None = None  # probes: the search may stop before max_rounds

    def gpu_hours(self, seconds_per_frame_iter: float, startup_s: float = JOB_STARTUP_S) -> float:
        jobs = self.jobs if self.jobs_upper_bound is None else self.jobs_upper_bound
        return (jobs * startup_s + self.frame_iters * seconds_per_frame_iter) / 3600


@dataclass
class Plan:
    """A run's plan: see :func:`make_plan`."""

    sessions: int
    train_requested: int
    training: pd.DataFrame  # kpms_flow.qa.training_set's table
    frames: dict[str, int]
    frame_sources: dict[str, str]
    budget_frames: int | None
    latent_dim: int
    latent_dim_source: str
    memory: resources.MemoryPlan
    jobs: list[JobKind] = field(default_factory=list)
    seconds_per_frame_iter: float = CPU_SECONDS_PER_FRAME_ITER
    rate_source: str = "CPU-measured (no GPU rate measured yet): an upper bound"

    @property
    def training_frames(self) -> int:
        used = self.training[self.training["used_for_training"]]
        return int(used["frames"].sum())

    @property
    def over_budget(self) -> list[str]:
        t = self.training
        return t.loc[t["exclusion_reason"].str.startswith("over the training budget"), "session"].tolist()

    def job_counts(self) -> dict[str, int]:
        """Rule -> jobs, as ``snakemake -n`` schedules them (probes: the first round)."""
        return {job.rule: job.jobs for job in self.jobs if job.jobs}

    def gpu_hours(self) -> float:
        return sum(job.gpu_hours(self.seconds_per_frame_iter) for job in self.jobs)

    def describe(self) -> str:
        lines = ["kpms-flow plan"]
        sources = pd.Series(self.frame_sources).value_counts()
        lines.append(
            f"  sessions: {self.sessions} ({self.train_requested} train: true), "
            f"{sum(self.frames.values()):,} frames; frame counts from "
            + ", ".join(f"{source} {n}" for source, n in sources.items())
        )
        if "estimated" in sources:
            lines.append(
                f"  WARNING: {sources['estimated']} sessions have no frame count (no pose "
                "file, no frames column): the median of the others stands in for them"
            )
        used = int(self.training["used_for_training"].sum())
        qa_out = len(self.training) - used - len(self.over_budget)
        budget = "none" if self.budget_frames is None else f"{self.budget_frames:,} frames"
        lines.append(
            f"  training: {used} sessions, {self.training_frames:,} frames "
            f"(budget {budget}; {len(self.over_budget)} sessions over the budget, "
            f"{qa_out} excluded by QA), applied to the rest with the frozen model"
        )
        lines.append(
            f"  latent_dim for the plan: {self.latent_dim} ({self.latent_dim_source})"
        )
        lines.append("  " + self.memory.describe())
        lines.append(
            f"  GPU jobs (time: {self.seconds_per_frame_iter * 1e6:.0f} us per frame and "
            f"sweep, {self.rate_source}; {JOB_STARTUP_S:g} s start-up per job):"
        )
        for job in self.jobs:
            if not job.jobs:
                continue
            count = f"{job.jobs}" if job.jobs_upper_bound is None else (
                f"{job.jobs} in the first round, at most {job.jobs_upper_bound}"
            )
            lines.append(
                f"    {job.rule:<16} {count:<34} {job.gpu_hours(self.seconds_per_frame_iter):>12,.1f} GPU-h"
                f"  {job.what}"
            )
        total_jobs = sum(j.jobs if j.jobs_upper_bound is None else j.jobs_upper_bound for j in self.jobs)
        lines.append(
            f"  total: at most {total_jobs:,} GPU jobs, {self.gpu_hours():,.1f} GPU-hours "
            f"({self.rate_source})"
        )
        return "\n".join(lines)


def deep_update(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged key by key into nested sections (Snakemake's
    ``--configfile`` merge), as a new dict."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def count_frames(sessions: pd.DataFrame, workdir: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Frames per session and where each count came from (see the module docstring)."""
    from .formats import load_session

    frames, sources = {}, {}
    has_column = "frames" in sessions.columns
    for row in sessions.itertuples(index=False):
        clean = workdir / "results" / "sessions" / row.session / "clean.h5"
        counted = resources.session_frames(clean)
        if counted is not None:
            frames[row.session], sources[row.session] = counted, "session files"
            continue
        path = Path(row.path) if Path(row.path).is_absolute() else workdir / row.path
        if path.exists():
            kp = load_session(path, row.format, row.session, animal=row.animal or "")
            frames[row.session], sources[row.session] = int(kp.n_frames), "pose files"
            continue
        value = str(getattr(row, "frames", "") if has_column else "").strip()
        if value:
            try:
                frames[row.session] = int(float(value))
            except ValueError:
                raise InputError(
                    f"sessions table, session {row.session}: frames {value!r} is not a number"
                ) from None
            sources[row.session] = "frames column"
    unknown = [s for s in sessions["session"] if s not in frames]
    if unknown:
        if not frames:
            raise InputError(
                "no frame count for any session: the pose files do not exist here and the "
                "sessions table has no frames column"
            )
        median = int(pd.Series(list(frames.values())).median())
        for session in unknown:
            frames[session], sources[session] = median, "estimated"
    return {s: frames[s] for s in sessions["session"]}, sources


def qa_rows(sessions: list[str], frames: dict[str, int], workdir: Path) -> pd.DataFrame:
    """The QA rows the workflow would see: the real ones where QA ran, else the frame
    count with no missing or outlier points."""
    rows = []
    for session in sessions:
        path = workdir / "results" / "sessions" / session / "qa.tsv"
        if path.exists():
            rows.append(pd.read_csv(path, sep="\t").iloc[0].to_dict())
        else:
            rows.append(
                {"session": session, "frames": frames[session], "nan_fraction": 0.0, "outlier_fraction": 0.0}
            )
    return pd.DataFrame(rows)


def make_plan(
    config: dict,
    sessions: pd.DataFrame,
    workdir: Path = Path("."),
    gpu_memory_gb: float | None = None,
    seconds_per_frame_iter: float | None = None,
) -> Plan:
    """The plan of a run of this config (schema defaults filled in) on this sessions table.

    Parameters
    ----------
    config : dict
        The validated config (:func:`kpms_flow.config.load_workflow_config`).
    sessions : pandas.DataFrame
        The sessions table as the workflow reads it.
    workdir : Path
        The run's working directory (relative pose paths, existing results).
    gpu_memory_gb : float, optional
        The fit GPU's memory; default ``training_budget.gpu_memory_gb``, then the
        deprecated ``gpu_memory_gb``; unknown without them.
    seconds_per_frame_iter : float, optional
        A measured rate replacing the CPU one.
    """
    from .qa import budget_frames, training_set

    workdir = Path(workdir)
    frames, sources = count_frames(sessions, workdir)
    train_flags = sessions["train"].astype(bool)
    train = sessions.loc[train_flags, "session"].tolist()
    apply = sessions.loc[~train_flags, "session"].tolist()
    groups = dict(zip(sessions["session"], sessions["group"].astype(str)))
    budget = config.get("training_budget") or {}
    training = training_set(
        qa_rows(train, frames, workdir), config["qa"], budget, groups, config["seed"], config["latent_dim"]
    )
    training["used_for_training"] = training["used_for_training"].astype(bool)

    if isinstance(config["latent_dim"], int):
        latent_dim, latent_source = config["latent_dim"], "config latent_dim"
    else:
        latent_dim = resources.UNKNOWN_LATENT_DIM
        latent_source = "latent_dim auto: PCA chooses it; keypoint-moseq's default planned"
    gpu_gb = gpu_memory_gb
    for candidate in (budget.get("gpu_memory_gb"), config.get("gpu_memory_gb")):
        gpu_gb = candidate if gpu_gb is None else gpu_gb
    used = training[training["used_for_training"]]
    train_frames = int(used["frames"].sum())
    memory = resources.plan_fit_memory(
        train_frames, latent_dim, None if gpu_gb is None else gpu_gb * 1024, on_gpu=True
    )

    search = config["kappa_search"]
    restarts = config["restarts"]["num_restarts"]
    jobs = []
    if search["enabled"]:
        first = 2 * search["probes_per_round"]
        per_round = max(search["probes_per_round"], search["confirm_probes"])
        most = 2 * per_round * search["max_rounds"]
        # A round is probes of num_iters sweeps, or confirmations of the stage's length.
        sweeps = sum(
            search["max_rounds"]
            * max(
                search["probes_per_round"] * search["num_iters"],
                search["confirm_probes"] * config[stage]["num_iters"],
            )
            for stage in ("arhmm", "full_model")
        )
        jobs.append(
            JobKind(
                "probe_kappa",
                first,
                f"kappa probes, {search['num_iters']} sweeps each (2 stages x "
                f"{search['probes_per_round']} per round x up to {search['max_rounds']} rounds, "
                f"up to {search['confirm_probes']} continued to the stage's length per round)",
                sweeps * train_frames,
                jobs_upper_bound=most,
            )
        )
    for rule, stage in (("fit_arhmm", "arhmm"), ("fit_full_model", "full_model")):
        iters = config[stage]["num_iters"]
        jobs.append(
            JobKind(rule, restarts, f"{restarts} restarts x {iters} sweeps", restarts * iters * train_frames)
        )
    jobs.append(JobKind("select_model", int(restarts > 1), "compares the restarts", 0))
    apply_iters = config["apply"]["num_iters"]
    left_out = training.loc[~training["used_for_training"], "session"]
    left_out_frames = sum(frames[s] for s in left_out)
    jobs.append(
        JobKind(
            "extract_results",
            1,
            f"training sessions' labels, + {len(left_out)} left-out sessions applied "
            f"({apply_iters} sweeps each)",
            apply_iters * left_out_frames,
        )
    )
    per_job = config["apply"].get("sessions_per_job", 1)
    jobs.append(
        JobKind(
            "apply_model" if per_job == 1 else "apply_batch",
            math.ceil(len(apply) / per_job),
            f"one per train: false session, {apply_iters} sweeps"
            if per_job == 1
            else f"{per_job} train: false sessions each (apply.sessions_per_job), {apply_iters} sweeps",
            apply_iters * sum(frames[s] for s in apply),
        )
    )
    rate_source = Plan.rate_source
    if seconds_per_frame_iter is not None:
        rate_source = "the rate given (--seconds-per-frame-iter)"
    return Plan(
        sessions=len(sessions),
        train_requested=len(train),
        training=training,
        frames=frames,
        frame_sources=sources,
        budget_frames=budget_frames(budget, config["latent_dim"]),
        latent_dim=latent_dim,
        latent_dim_source=latent_source,
        memory=memory,
        jobs=jobs,
        seconds_per_frame_iter=seconds_per_frame_iter or CPU_SECONDS_PER_FRAME_ITER,
        rate_source=rate_source,
    )


def load_config(config_files: list[str], sessions: str | None, workdir: Path) -> tuple[dict, pd.DataFrame]:
    """The configs merged in order (as ``--configfile``), checked and with defaults, and
    the sessions table (``sessions`` overrides the config's)."""
    import yaml

    from .config import load_workflow_config

    config: dict = {}
    for path in config_files:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise InputError(f"{path}: cannot read the config: {error}") from None
        config = deep_update(config, loaded)
    if sessions is not None:
        config["sessions"] = sessions
    table = config.get("sessions", "config/sessions.tsv")
    if not Path(table).is_absolute():
        config["sessions"] = str(workdir / table)
    config, table = load_workflow_config(config, SCHEMAS)
    return config, table.reset_index(drop=True)


def main(argv=None) -> int:
    """``kpms-flow-plan``: print the plan of a run (see the module docstring).

    Returns
    -------
    int
        0 on success; exits with status 2 and the error on bad input.
    """
    parser = argparse.ArgumentParser(
        prog="kpms-flow-plan",
        description="Training frames, GPU memory plan, GPU jobs and GPU-hours of a run, before it starts.",
    )
    parser.add_argument(
        "--config", action="append", metavar="YAML",
        help="config file(s), merged in order like --configfile (default: config/config.yaml)",
    )
    parser.add_argument("--sessions", help="sessions table (default: the config's 'sessions')")
    parser.add_argument("--workdir", default=".", help="the run's working directory (default: %(default)s)")
    parser.add_argument("--gpu-memory-gb", type=float, help="the fit GPU's memory (default: training_budget.gpu_memory_gb)")
    parser.add_argument(
        "--seconds-per-frame-iter", type=float,
        help=f"a measured sweep rate (default: the CPU's {CPU_SECONDS_PER_FRAME_ITER:g})",
    )
    parser.add_argument(
        "--write-sessions", metavar="TSV",
        help="write the sessions table with train: false for the sessions over the budget, so "
        "they are applied by parallel apply_model jobs rather than inside extract_results",
    )
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    try:
        config, sessions = load_config(args.config or [str(workdir / "config/config.yaml")], args.sessions, workdir)
        plan = make_plan(config, sessions, workdir, args.gpu_memory_gb, args.seconds_per_frame_iter)
        if args.write_sessions:
            write_budgeted_sessions(config["sessions"], plan.over_budget, args.write_sessions)
    except InputError as error:
        print(f"kpms-flow-plan: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print(plan.describe())
    if args.write_sessions:
        print(f"wrote {args.write_sessions}: {len(plan.over_budget)} sessions over the budget set to train: false")
    return 0


def write_budgeted_sessions(table_path, over_budget: list[str], output) -> None:
    """The sessions table with ``train: false`` for ``over_budget``, written to ``output``
    (never over the table it comes from).

    extract_results applies the model to training sessions the budget left out, one after
    another in one job; at thousands of sessions that job runs for days. Marked
    ``train: false``, they become one apply_model job each, run in parallel.
    """
    from .atomic import write_table
    from .sessions import read_sessions_table

    if Path(output).resolve() == Path(table_path).resolve():
        raise InputError(f"--write-sessions {output}: that is the input table; name a new file")
    table = read_sessions_table(table_path)
    table["train"] = table["train"] & ~table["session"].isin(set(over_budget))
    write_table(output, table)


if __name__ == "__main__":
    main()
