"""The training budget (kpms_flow.qa.budget_exclusions) and the run plan (kpms_flow.plan)."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, TINY, copy_run, snakemake, write_demo_config
from kpms_flow.dryrun import job_counts
from kpms_flow import plan as run_plan
from kpms_flow.keypoints import InputError
from kpms_flow.qa import (
    OVER_BUDGET,
    budget_exclusions,
    budget_frames,
    qa_summary,
    session_priority,
    training_set,
)
from kpms_flow.resources import plan_fit_memory
from kpms_flow.summary import format_summary, run_summary

THRESHOLDS = {"max_nan_fraction": 0.5, "max_outlier_fraction": 0.25, "min_frames": 300}


def qa_rows(frames: dict[str, int], nan: dict[str, float] | None = None) -> pd.DataFrame:
    nan = nan or {}
    return pd.DataFrame(
        {
            "session": list(frames),
            "frames": list(frames.values()),
            "nan_fraction": [nan.get(s, 0.0) for s in frames],
            "outlier_fraction": 0.0,
        }
    )


def random_table(rng, n: int, groups: int = 3) -> tuple[dict[str, int], dict[str, str]]:
    names = [f"rec{i:04d}" for i in range(n)]
    frames = dict(zip(names, rng.integers(1_000, 20_000, n).tolist()))
    group = dict(zip(names, [f"g{k}" for k in rng.integers(0, groups, n)]))
    return frames, group


def chosen(frames, groups, budget, seed=0) -> set[str]:
    return set(frames) - set(budget_exclusions(frames, groups, budget, seed))


def seeded_order(sessions, seed=0) -> list[str]:
    return sorted(sessions, key=lambda s: (session_priority(seed, s), s))


# ---------------------------------------------------------------- no budget problem
def test_without_a_budget_or_within_it_the_table_is_the_qa_decision():
    frames = {"a1": 1000, "a2": 2000, "b1": 1500, "short": 200}
    rows = qa_rows(frames, nan={"a2": 0.9})
    groups = {"a1": "A", "a2": "A", "b1": "B", "short": "B"}
    plain = training_set(rows, THRESHOLDS)
    assert plain["used_for_training"].tolist() == [True, False, True, False]
    assert plain["exclusion_reason"][1].startswith("nan_fraction 0.900 > max_nan_fraction")
    unset = {"max_frames": None, "gpu_memory_gb": None}
    pd.testing.assert_frame_equal(training_set(rows, THRESHOLDS, unset, groups, 7), plain)
    # 2,500 frames pass QA: a budget of exactly that changes nothing
    roomy = {"max_frames": 2500, "gpu_memory_gb": None}
    pd.testing.assert_frame_equal(training_set(rows, THRESHOLDS, roomy, groups, 7), plain)


# ---------------------------------------------------------------- the subset rule
def test_each_group_gets_its_proportional_share_and_at_least_one_session():
    rng = np.random.default_rng(1)
    frames, groups = random_table(rng, 300, groups=3)
    frames["tiny_only"] = 5_000  # a group of one session, far above its proportional share
    groups["tiny_only"] = "rare"
    budget = 400_000
    kept = chosen(frames, groups, budget)
    assert sum(frames[s] for s in kept) <= budget
    assert "tiny_only" in kept
    rest_budget = budget - frames["tiny_only"]
    total = sum(f for s, f in frames.items() if groups[s] != "rare")
    for group in ["g0", "g1", "g2"]:
        members = [s for s in frames if groups[s] == group]
        group_frames = sum(frames[s] for s in members)
        share = rest_budget * group_frames / total
        got = sum(frames[s] for s in kept if groups[s] == group)
        assert share - max(frames[s] for s in members) < got <= share + 1e-6, group
        # the kept sessions are the first ones of the group's seeded order
        order = seeded_order(members)
        assert set(order[: len([s for s in members if s in kept])]) == {s for s in members if s in kept}


def test_the_decision_does_not_depend_on_row_order_and_depends_on_the_seed():
    rng = np.random.default_rng(2)
    frames, groups = random_table(rng, 200)
    budget = sum(frames.values()) // 4
    shuffled = dict(sorted(frames.items(), key=lambda kv: rng.random()))
    assert chosen(frames, groups, budget) == chosen(shuffled, groups, budget)
    assert chosen(frames, groups, budget, seed=0) != chosen(frames, groups, budget, seed=1)


def test_appending_sessions_never_reshuffles_the_existing_choice():
    """The guaranteed stability: per group, the existing sessions chosen before and after
    appending are nested (a prefix of a fixed order, cut a little earlier or later)."""
    rng = np.random.default_rng(3)
    changed_cuts = 0
    for _ in range(40):
        frames, groups = random_table(rng, int(rng.integers(20, 120)))
        budget = int(sum(frames.values()) * rng.uniform(0.2, 0.8))
        before = chosen(frames, groups, budget)
        more_frames, more_groups = dict(frames), dict(groups)
        for k in range(int(rng.integers(1, 4))):
            more_frames[f"new{k}"] = int(rng.integers(1_000, 20_000))
            more_groups[f"new{k}"] = f"g{rng.integers(0, 3)}"
        after = chosen(more_frames, more_groups, budget) & set(frames)
        for group in set(groups.values()):
            old = {s for s in before if groups[s] == group}
            new = {s for s in after if groups[s] == group}
            assert old <= new or new <= old, group
            changed_cuts += old != new
    assert changed_cuts > 0  # the shares do move: the property is not vacuous here


def test_an_appended_session_moves_each_groups_cut_by_its_share():
    frames = {f"a{i}": 1000 for i in range(6)} | {f"b{i}": 1000 for i in range(6)}
    groups = {s: s[0] for s in frames}
    kept = chosen(frames, groups, 6000)
    assert len(kept) == 6 and {groups[s] for s in kept} == {"a", "b"}
    # a 13th session of group b: b's share grows to 6000 * 7/13, a's shrinks to 6000 * 6/13
    frames_b = dict(frames, b6=1000)
    kept_b = chosen(frames_b, dict(groups, b6="b"), 6000)
    a_before = [s for s in seeded_order(s for s in frames if s[0] == "a")]
    assert {s for s in kept_b if s[0] == "a"} == set(a_before[:2])  # floor(2769 / 1000)
    assert sum(frames_b[s] for s in kept_b) <= 6000


def test_a_larger_budget_keeps_everything_a_smaller_one_kept():
    rng = np.random.default_rng(4)
    frames, groups = random_table(rng, 150)
    total = sum(frames.values())
    budgets = [int(total * f) for f in (0.1, 0.3, 0.6, 0.9)] + [total]
    picks = [chosen(frames, groups, b) for b in budgets]
    for small, large in zip(picks, picks[1:]):
        assert small <= large and small != large
    assert picks[-1] == set(frames)


def test_a_budget_below_one_session_per_group_is_a_clear_error():
    frames = {"a1": 4000, "a2": 4000, "b1": 3000}
    groups = {"a1": "A", "a2": "A", "b1": "B"}
    with pytest.raises(InputError, match=r"training_budget: 6000 frames cannot hold one session of each group"):
        budget_exclusions(frames, groups, 6000, seed=0)


def test_gpu_memory_budget_is_what_the_memory_plan_fits_with_parallel_message_passing():
    limit = budget_frames({"max_frames": None, "gpu_memory_gb": 24}, latent_dim=4)
    assert plan_fit_memory(limit, 4, 24 * 1024, on_gpu=True).reason == "fits with parallel message passing"
    assert plan_fit_memory(limit + 100, 4, 24 * 1024, on_gpu=True).reason != "fits with parallel message passing"
    # auto latent_dim plans with keypoint-moseq's default of 10: 2.5 times fewer frames
    assert budget_frames({"gpu_memory_gb": 24}, "auto") == pytest.approx(limit / 2.5, abs=1)
    assert budget_frames({"max_frames": 1000, "gpu_memory_gb": 24}, 4) == 1000


# ---------------------------------------------------------------- what the summaries say
def test_qa_and_run_summaries_say_which_sessions_and_why():
    frames = {"a1": 1000, "a2": 1000, "b1": 1000, "b2": 1000, "held": 1000}
    rows = qa_rows(frames)
    groups = {s: s[0] for s in frames}
    train = {s: s != "held" for s in frames}
    training = training_set(rows[rows["session"] != "held"], THRESHOLDS, {"max_frames": 2000}, groups, 0)
    left_out = training.loc[~training["used_for_training"], "session"].tolist()
    assert len(left_out) == 2 and {s[0] for s in left_out} == {"a", "b"}
    assert all(r.startswith(f"{OVER_BUDGET} (2000 frames; group ") for r in training["exclusion_reason"] if r)
    qa = qa_summary(rows, train, THRESHOLDS, training)
    over = qa[qa["session"].isin(left_out)]
    assert over["passes_qa"].all() and not over["used_for_training"].any()
    assert over["exclusion_reason"].str.startswith(OVER_BUDGET).all()
    used = training.loc[training["used_for_training"], "session"].tolist()
    syllables = {s: np.repeat(np.arange(10), 100) for s in frames}
    summary = run_summary(syllables, used, 30.0, 4, {}, qa)
    assert summary["over_budget_sessions"] == 2 and summary["excluded_sessions"] == 0
    text = format_summary(summary)
    assert "2 trained, 3 applied with the frozen model (2 over the training budget)" in text


# ---------------------------------------------------------------- the plan
def sessions_table(tmp_path, frames: dict[str, int], train: dict[str, bool], groups) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "session": list(frames),
            "path": [f"pose/{s}.h5" for s in frames],  # not there: the frames column counts
            "format": "deeplabcut",
            "group": [groups[s] for s in frames],
            "train": ["true" if train[s] else "false" for s in frames],
            "frames": list(frames.values()),
        }
    )
    path = tmp_path / "sessions.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path


DEMO_FRAMES = {f"demo_{i:02d}": 1800 for i in range(1, 6)}
DEMO_TRAIN = {s: s != "demo_05" for s in DEMO_FRAMES}
DEMO_GROUPS = {s: "AB"[i % 2] for i, s in enumerate(DEMO_FRAMES)}  # A B A B A as the demo
# What the test config schedules (by hand from config/test.yaml): 2 stages x 2 probes in a
# search's first round (at most 2 rounds), 2 restarts x 1 fit per stage, select_model
# for 2 restarts, one extract_results, apply_model for the one train: false session.
TEST_CONFIG_GPU_JOBS = {
    "probe_kappa": 4,
    "fit_arhmm": 2,
    "fit_full_model": 2,
    "select_model": 1,
    "extract_results": 1,
    "apply_model": 1,
}


def test_plan_counts_gpu_jobs_frames_and_hours_by_hand(tmp_path):
    table = sessions_table(tmp_path, DEMO_FRAMES, DEMO_TRAIN, DEMO_GROUPS)
    config_path = tmp_path / "budget.yaml"
    config_path.write_text(yaml.safe_dump({"training_budget": {"max_frames": 4000}}))
    config, sessions = run_plan.load_config([str(ROOT / "config/test.yaml"), str(config_path)], str(table), tmp_path)
    plan = run_plan.make_plan(config, sessions, tmp_path)
    assert plan.job_counts() == TEST_CONFIG_GPU_JOBS
    probes = next(j for j in plan.jobs if j.rule == "probe_kappa")
    assert probes.jobs_upper_bound == 2 * 2 * 2
    # per stage, 2 rounds of the larger of 2 probes x 2 sweeps and 1 confirmation x 3 sweeps
    assert probes.frame_iters == 2 * 2 * max(2 * 2, 1 * 3) * 3600
    # budget 4,000 of 7,200 training frames: one session of each group (shares 2,000)
    assert plan.training_frames == 3600 and len(plan.over_budget) == 2
    assert {DEMO_GROUPS[s] for s in plan.over_budget} == {"A", "B"}
    assert set(plan.frame_sources.values()) == {"frames column"}
    # fit_full_model: 2 jobs x start-up + 2 restarts x 3 sweeps x 3,600 frames x the CPU rate
    full = next(j for j in plan.jobs if j.rule == "fit_full_model")
    expected = (2 * run_plan.JOB_STARTUP_S + 2 * 3 * 3600 * run_plan.CPU_SECONDS_PER_FRAME_ITER) / 3600
    assert full.gpu_hours(plan.seconds_per_frame_iter) == pytest.approx(expected)
    # extract_results applies the two left-out sessions: 3 sweeps x 3,600 frames
    extract = next(j for j in plan.jobs if j.rule == "extract_results")
    assert extract.frame_iters == 3 * 3600
    text = plan.describe()
    assert "training: 2 sessions, 3,600 frames (budget 4,000 frames; 2 sessions over the budget" in text
    assert "CPU-measured (no GPU rate measured yet)" in text


def test_plan_cli_writes_the_budgeted_table_and_refuses_bad_input(tmp_path, capsys):
    table = sessions_table(tmp_path, DEMO_FRAMES, DEMO_TRAIN, DEMO_GROUPS)
    budget = tmp_path / "budget.yaml"
    budget.write_text(yaml.safe_dump({"training_budget": {"max_frames": 4000}}))
    out = tmp_path / "budgeted.tsv"
    args = ["--config", str(ROOT / "config/test.yaml"), "--config", str(budget), "--sessions", str(table)]
    assert run_plan.main(args + ["--write-sessions", str(out), "--workdir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "apply_model" in printed and "2 sessions over the budget set to train: false" in printed
    written = pd.read_csv(out, sep="\t")
    assert written["train"].sum() == 2 and written.loc[written["session"] == "demo_05", "train"].item() is False
    assert pd.read_csv(table, sep="\t")["train"].sum() == 4  # the input table is untouched
    with pytest.raises(SystemExit) as stop:
        run_plan.main(args + ["--write-sessions", str(table), "--workdir", str(tmp_path)])
    assert stop.value.code == 2 and "that is the input table" in capsys.readouterr().err
    no_frames = tmp_path / "no_frames.tsv"
    pd.read_csv(table, sep="\t").drop(columns="frames").to_csv(no_frames, sep="\t", index=False)
    with pytest.raises(SystemExit):
        run_plan.main(["--config", str(ROOT / "config/test.yaml"), "--sessions", str(no_frames), "--workdir", str(tmp_path)])
    assert "no frame count for any session" in capsys.readouterr().err


@pytest.mark.workflow
def test_dry_run_with_a_budget_schedules_the_plans_jobs_and_no_apply_for_left_out_sessions(tmp_path):
    """A budget leaves sessions out at run time; extract_results applies the model to them,
    so the DAG is the same: apply_model only for the train: false session."""
    config = write_demo_config(tmp_path, training_budget={"max_frames": 4000})
    demo = pd.read_csv(ROOT / "config" / "demo_sessions.tsv", sep="\t", dtype=str, keep_default_na=False)
    demo.assign(frames=1800).to_csv(tmp_path / "config" / "demo_sessions.tsv", sep="\t", index=False)
    proc = snakemake(tmp_path, "-n", config=config)
    text = proc.stdout + proc.stderr
    plan_config, sessions = run_plan.load_config([str(config)], None, tmp_path)
    plan = run_plan.make_plan(plan_config, sessions, tmp_path)
    assert len(plan.over_budget) == 2  # the budget leaves two training sessions out
    scheduled = job_counts(text)
    assert {rule: scheduled.get(rule, 0) for rule in plan.job_counts()} == plan.job_counts()
    assert set(re.findall(r"results/apply/(\S+)\.h5", text)) == {"demo_05"}


# ---------------------------------------------------------------- a forced subset, end to end
@pytest.fixture(scope="module")
def budget_run(tmp_path_factory, demo_reference):
    """The demo with a training budget of 4,000 frames (its 4 training sessions have 7,200):
    one session of each group trains, the other two get the frozen model's labels. Fixed
    tiny kappas, one restart and no noise calibration (the search, selection and calibration
    are tested on the reference run); the rules that never see a session list are left out.
    A copy of the reference run: its loaded sessions are kept (same settings), so the run
    starts at the training set, where the budget applies."""
    workdir = copy_run(demo_reference, tmp_path_factory.mktemp("budget_run"))
    settings = dict(
        TINY,
        kappa_search={"enabled": False},
        training_budget={"max_frames": 4000},
        calibration={"annotations": []},  # keypoint-moseq's default noise model: two jobs fewer
    )
    config = write_demo_config(workdir, **settings)
    targets = [f"results/syllables/{s}.csv" for s in DEMO_FRAMES] + ["results/summary.txt"]
    snakemake(workdir, "--resources", "gpu=2", "--", *targets, config=config)
    return workdir


@pytest.mark.workflow
def test_a_forced_subset_trains_one_session_per_group_and_applies_the_rest(budget_run, demo_reference):
    training = pd.read_csv(budget_run / "results" / "qa" / "training_set.tsv", sep="\t", keep_default_na=False)
    used = training.loc[training["used_for_training"], "session"].tolist()
    left_out = training.loc[~training["used_for_training"], "session"].tolist()
    assert len(used) == 2 and {DEMO_GROUPS[s] for s in used} == {"A", "B"}
    assert len(left_out) == 2 and "demo_05" not in used + left_out
    for reason in training.set_index("session").loc[left_out, "exclusion_reason"]:
        assert reason.startswith(f"{OVER_BUDGET} (4000 frames; group "), reason
    with h5py.File(budget_run / "results" / "data" / "data.h5") as f:  # what the model saw
        assert sorted(json.loads(f.attrs["sessions"])) == sorted(used)
        assert f["data/mask"].shape[0] == 2
    # Each left-out session: labels from the frozen model (applied in extract_results, as
    # QA-excluded training sessions are), the same CSV as a trained session's.
    log = (budget_run / "results" / "logs" / "extract_results.log").read_text()
    for session in left_out:
        assert f"session {session} was excluded from training: applying the model" in log
    with h5py.File(budget_run / "results" / "extract" / "results.h5") as f:
        assert sorted(f) == sorted(used + left_out)
    reference = pd.read_csv(demo_reference / "results" / "syllables" / "demo_01.csv")
    for session in DEMO_FRAMES:
        table = pd.read_csv(budget_run / "results" / "syllables" / f"{session}.csv")
        assert list(table.columns) == list(reference.columns) and len(table) == DEMO_FRAMES[session]
    text = (budget_run / "results" / "summary.txt").read_text()
    assert "2 trained, 3 applied with the frozen model (2 over the training budget)" in text
