"""Held-out sessions applied several per job (config apply.sessions_per_job, rule apply_batch):
the batches, the labels (identical to each session's own apply_model job) and the job list."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake, write_demo_config
from kpms_flow.apply_batches import apply_batches
from kpms_flow.atomic import atomic_directory
from kpms_flow.dryrun import job_counts


# ------------------------------------------------------------------------- batches (unit)
def test_batches_are_the_held_out_sessions_in_table_order_cut_every_n():
    sessions = [f"s{i}" for i in range(7)]
    assert apply_batches(sessions, 3) == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6"]]
    assert apply_batches(sessions, 1) == [[s] for s in sessions]  # today's one job each
    assert apply_batches(sessions, 100) == [sessions]
    assert apply_batches([], 4) == []
    with pytest.raises(ValueError, match="at least 1"):
        apply_batches(sessions, 0)


@pytest.mark.parametrize("n_before", range(1, 10))
@pytest.mark.parametrize("per_job", [1, 2, 3, 4])
def test_appending_a_session_changes_at_most_the_last_batch(n_before, per_job):
    before = apply_batches([f"s{i}" for i in range(n_before)], per_job)
    after = apply_batches([f"s{i}" for i in range(n_before + 1)], per_job)
    # every batch but the last is unchanged; the new session joins the last or starts one
    assert after[: len(before) - 1] == before[:-1]
    if len(before[-1]) < per_job:
        assert len(after) == len(before) and after[-1] == before[-1] + [f"s{n_before}"]
    else:
        assert after[: len(before)] == before and after[-1] == [f"s{n_before}"]


def test_atomic_directory_publishes_only_a_complete_folder(tmp_path):
    target = tmp_path / "batch_0"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "a.h5").write_text("first")
            raise RuntimeError("killed half-way")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    target.mkdir()  # Snakemake may leave an empty output folder
    with atomic_directory(target) as tmp:
        (tmp / "a.h5").write_text("first")
        (tmp / "b.h5").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["a.h5", "b.h5"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    assert [p.name for p in tmp_path.iterdir()] == ["batch_0"]


@pytest.mark.parametrize("per_job, rule, jobs", [(1, "apply_model", 7), (3, "apply_batch", 3), (8, "apply_batch", 1)])
def test_plan_counts_one_apply_job_per_batch(tmp_path, per_job, rule, jobs):
    """kpms-flow-plan lists the apply jobs the workflow runs: one start-up per batch, the
    same frame-sweeps whatever the batches."""
    from kpms_flow import plan as run_plan

    frames = {f"s{i}": 1000 * (i + 1) for i in range(9)}
    table = pd.DataFrame({
        "session": list(frames), "path": [f"pose/{s}.h5" for s in frames], "format": "deeplabcut",
        "train": ["true"] * 2 + ["false"] * 7, "frames": list(frames.values()),
    })
    table.to_csv(tmp_path / "sessions.tsv", sep="\t", index=False)
    (tmp_path / "batches.yaml").write_text(yaml.safe_dump({"apply": {"num_iters": 3, "sessions_per_job": per_job}}))
    config, sessions = run_plan.load_config(
        [str(ROOT / "config/test.yaml"), str(tmp_path / "batches.yaml")], str(tmp_path / "sessions.tsv"), tmp_path
    )
    apply = next(j for j in run_plan.make_plan(config, sessions, tmp_path).jobs if j.rule.startswith("apply"))
    assert (apply.rule, apply.jobs) == (rule, jobs)
    assert apply.frame_iters == 3 * sum(list(frames.values())[2:])


# ------------------------------------------------ labels: batched == alone (real keypoint-moseq)
@pytest.fixture(scope="module")
def frozen_model(tmp_path_factory):
    """A tiny full model fitted in-process on two demo sessions, and three other sessions'
    cleaned keypoints (results/sessions/<s>/clean.h5 as the workflow writes them)."""
    import keypoint_moseq as kpms  # noqa: F401  (x64 before jax_moseq)
    import jax

    from kpms_flow.config import kpms_config
    from kpms_flow.demo import generate_demo
    from kpms_flow.fitting import FitSpec, init_arhmm, run_fit
    from kpms_flow.formats import load_session
    from kpms_flow.keypoints import write_session

    jax.config.update("jax_compilation_cache_dir", str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    out = tmp_path_factory.mktemp("frozen_model")
    table = generate_demo(out / "demo", n_sessions=5, n_frames=300, n_heldout=3)
    sessions = [load_session(row.path, "deeplabcut", row.session) for row in table.itertuples()]
    trains = table["train"].astype(str).str.lower() == "true"
    train = [kp for kp, used in zip(sessions, trains) if used]
    held_out = [kp for kp, used in zip(sessions, trains) if not used]
    assert len(train) == 2 and len(held_out) == 3
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]
    config = {key: spec["default"] for key, spec in props.items() if "default" in spec}
    for section in ("ar_hypparams", "trans_hypparams", "obs_hypparams", "cen_hypparams", "error_estimator"):
        config[section] = {k: v["default"] for k, v in props[section]["properties"].items()}
    config.update(anterior_bodyparts=["nose"], posterior_bodyparts=["tailbase"])
    config["trans_hypparams"]["num_states"] = 10
    kcfg = kpms_config(config, train[0].bodyparts, latent_dim=3)
    data, metadata = kpms.format_data(
        {kp.session: kp.coordinates for kp in train}, {kp.session: kp.confidences for kp in train}, **kcfg
    )
    pca = kpms.fit_pca(**data, **kcfg)
    spec = FitSpec(work_dir=out / "work", output=out / "checkpoint.h5", num_iters=2, ar_only=False,
                   fingerprint="apply-batches", save_every_n_iters=1)
    run_fit(spec, data, metadata, lambda: (init_arhmm(data, pca, kcfg, 1e4, 0, 30.0), 0))
    clean = {}
    for kp in held_out:
        clean[kp.session] = out / "sessions" / kp.session / "clean.h5"
        write_session(clean[kp.session], kp)
    return spec.output, clean, kcfg


def applied(path: Path, session: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        assert list(f) == [session]  # one session per file
        return {name: f[session][name][()] for name in ("syllable", "latent_state", "centroid", "heading")}


@pytest.mark.workflow  # real keypoint-moseq sweeps (in-process)
def test_batched_labels_equal_each_sessions_own_apply(frozen_model, tmp_path):
    """Each session in a batch gets exactly the labels (and latent states) of its own
    apply_model job, whichever sessions share its batch and wherever it stands in it."""
    from kpms_flow.apply_batches import apply_batch
    from kpms_flow.keypoints import read_session
    from kpms_flow.model import apply_to_session
    from kpms_flow.resources import checkpoint_latent_dim, plan_for_job
    from kpms_flow.results import read_session_results

    checkpoint, clean, kcfg = frozen_model
    first, middle, last = clean
    log = logging.getLogger("kpms_flow")
    alone = {}
    for session, path in clean.items():  # as scripts/apply_model.py does, one session per call
        kp = read_session(path)
        plan = plan_for_job(kp.n_frames, checkpoint_latent_dim(checkpoint), None, log)
        apply_to_session(checkpoint, kp, kcfg, 3, tmp_path / "alone" / f"{session}.h5", plan)
        alone[session] = applied(tmp_path / "alone" / f"{session}.h5", session)
    written = apply_batch(checkpoint, list(clean.values()), kcfg, 3, tmp_path / "batch_0", None, log)
    assert written == {s: tmp_path / "batch_0" / f"{s}.h5" for s in clean}
    assert sorted(p.name for p in (tmp_path / "batch_0").iterdir()) == sorted(f"{s}.h5" for s in clean)
    # another batch, another order: the middle session first, with only the last beside it
    apply_batch(checkpoint, [clean[middle], clean[last]], kcfg, 3, tmp_path / "batch_1", None, log)
    for session in clean:
        batched = applied(tmp_path / "batch_0" / f"{session}.h5", session)
        assert batched["syllable"].shape == (read_session(clean[session]).n_frames,)
        for name, array in alone[session].items():
            np.testing.assert_array_equal(batched[name], array, err_msg=f"{session} {name}")
    for session in (middle, last):
        regrouped = applied(tmp_path / "batch_1" / f"{session}.h5", session)
        for name, array in alone[session].items():
            np.testing.assert_array_equal(regrouped[name], array, err_msg=f"{session} {name}")
    # the comparison can fail: different sessions do get different labels
    assert not np.array_equal(alone[first]["latent_state"], alone[middle]["latent_state"])
    # export_session (CSV and NWB) reads a session's results from its batch's folder
    from_folder = read_session_results(tmp_path / "batch_0", middle)
    np.testing.assert_array_equal(from_folder["syllable"], alone[middle]["syllable"])


# ------------------------------------------------------------------ the job list (dry runs)
def dry_run_blocks(workdir: Path, config: Path) -> tuple[dict[str, int], list[dict[str, str]]]:
    """Job counts and every scheduled job's rule, input and output lines (``snakemake -n``)."""
    proc = snakemake(workdir, "-n", config=config)
    text = proc.stdout + proc.stderr
    jobs, job = [], None
    for line in text.splitlines():
        if match := re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):\s*$", line.strip()):
            job = {"rule": match.group(1)}
            jobs.append(job)
        elif job is not None and (match := re.match(r"^\s+(input|output): (.*)$", line)):
            job[match.group(1)] = match.group(2)
    return job_counts(text), jobs


def held_out_config(workdir: Path, held_out: list[str], sessions: list[str], per_job: int) -> Path:
    """The test config with ``held_out`` set to train: false and only ``sessions`` in the table."""
    config = write_demo_config(workdir)
    settings = yaml.safe_load(config.read_text())
    settings["apply"] = dict(settings["apply"], sessions_per_job=per_job)
    table = pd.read_csv(ROOT / "config" / "demo_sessions.tsv", sep="\t", dtype=str, keep_default_na=False)
    table = table[table["session"].isin(sessions)].copy()
    table["train"] = np.where(table["session"].isin(held_out), "false", "true")
    name = f"sessions_{len(sessions)}_{per_job}"
    table.to_csv(workdir / "config" / f"{name}.tsv", sep="\t", index=False)
    settings["sessions"] = f"config/{name}.tsv"
    path = workdir / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def batch_jobs(jobs: list[dict[str, str]]) -> dict[str, list[str]]:
    """apply_batch job output -> the sessions it applies (from its inputs)."""
    return {
        job["output"]: re.findall(r"results/sessions/([^/]+)/clean\.h5", job["input"])
        for job in jobs
        if job["rule"] == "apply_batch"
    }


@pytest.mark.workflow  # snakemake -n
def test_dry_run_applies_held_out_sessions_in_batches(tmp_path):
    """Held-out demo_03, demo_04 (and then an appended demo_05) at 2 per job: one apply_batch
    job per batch and no apply_model job; each export reads its session's batch; appending
    demo_05 leaves the first batch's job as it was (same inputs, so a completed run keeps
    it) and adds one; at 3 per job it joins the last batch instead."""
    held_out = ["demo_03", "demo_04", "demo_05"]
    four = ["demo_01", "demo_02", "demo_03", "demo_04"]
    five = four + ["demo_05"]
    counts, jobs = dry_run_blocks(tmp_path, held_out_config(tmp_path, held_out, four, 2))
    assert counts["apply_batch"] == 1 and "apply_model" not in counts
    assert counts["export_session"] == 4 and counts["extract_results"] == 1
    assert batch_jobs(jobs) == {"results/apply/batch_0": ["demo_03", "demo_04"]}
    counts, jobs = dry_run_blocks(tmp_path, held_out_config(tmp_path, held_out, five, 2))
    assert counts["apply_batch"] == 2 and "apply_model" not in counts
    assert batch_jobs(jobs) == {
        "results/apply/batch_0": ["demo_03", "demo_04"],
        "results/apply/batch_1": ["demo_05"],
    }
    for job in jobs:  # the calibrated noise model, as apply_model's (test config: annotations)
        if job["rule"] == "apply_batch":
            assert "results/calibration/error_estimator.tsv" in job["input"], job
    # an export's outputs: the session's CSV and NWB file
    exports = {
        csv: j["input"]
        for j in jobs
        if j["rule"] == "export_session"
        for csv in j["output"].split(", ")
        if csv.endswith(".csv")
    }
    assert "results/apply/batch_1," in exports["results/syllables/demo_05.csv"]
    assert "results/apply/batch_0," in exports["results/syllables/demo_03.csv"]
    assert "results/extract/results.h5," in exports["results/syllables/demo_01.csv"]
    group_statistics = next(j for j in jobs if j["rule"] == "group_statistics")
    assert "results/apply/batch_0, results/apply/batch_1" in group_statistics["input"]
    # at 3 per job the appended session joins the last batch (that batch reruns)
    _, jobs = dry_run_blocks(tmp_path, held_out_config(tmp_path, held_out, five, 3))
    assert batch_jobs(jobs) == {"results/apply/batch_0": ["demo_03", "demo_04", "demo_05"]}
