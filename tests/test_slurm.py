"""The slurm profile on a real SLURM cluster: slurmctld, slurmd, slurmdbd and MariaDB on this
machine (tests/slurm/cluster.sh), partitions `cpu` and `gpu` with one fake GPU.

The suite's reference run of the demo (conftest's ``demo_reference``) goes through
``--profile profiles/slurm`` unchanged there; sacct then says where every job ran. Needs root
and Debian's packages (installed on first use); skipped otherwise, and the reference is then
made locally.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import ROOT, SACCT_ROWS, dry_run_jobs, local_rules, slurm_unavailable

PROFILE = ROOT / "profiles" / "slurm"

pytestmark = pytest.mark.slurm


def gpu_rules_in_workflow() -> set[str]:
    """Rules that declare the gpu resource (JAX rules), and rules inheriting one."""
    rules, current = set(), None
    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    for line in text.splitlines():
        if match := re.match(r"(?:rule|checkpoint) (\w+):", line):
            current = match.group(1)
        elif re.match(r"\s+gpu=1,", line) and current:
            rules.add(current)
    for parent, child in re.findall(r"use rule (\w+) as (\w+)", text):
        if parent in rules:
            rules.add(child)
    return rules


def test_profile_routes_every_jax_rule_and_only_those_to_the_gpu_partition():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    gpu_partition = {
        rule
        for rule, settings in profile["set-resources"].items()
        if settings.get("slurm_partition") == "gpu"
    }
    jax_rules = gpu_rules_in_workflow()
    assert {"probe_kappa", "fit_arhmm", "fit_full_model", "apply_model"} <= jax_rules
    assert gpu_partition == jax_rules
    assert profile["default-resources"]["slurm_partition"] == "cpu"
    assert profile["executor"] == "slurm" and profile["retries"] >= 1


def rule_of(comment: str) -> str:
    """The plugin's --comment: rule_<rule>[_wildcards_...], or group_<group>... for groups."""
    name = re.sub(r"_wildcards_.*$", "", comment)
    return name.removeprefix("rule_")


@pytest.fixture(scope="module")
def slurm_run(request):
    """The suite's reference run, which conftest's demo_reference makes on the test cluster
    where one can run: its folder and sacct's rows for its jobs."""
    if reason := slurm_unavailable():
        pytest.skip(reason)
    workdir = request.getfixturevalue("demo_reference")
    if not (workdir / SACCT_ROWS).exists():
        pytest.skip(f"{workdir} was not made on the test cluster (KPMS_FLOW_DEMO_REFERENCE)")
    return workdir, json.loads((workdir / SACCT_ROWS).read_text())


@pytest.mark.workflow
def test_job_states_were_checked_every_few_seconds(slurm_run):
    """The cap on the wait between status checks (slurm_cluster's environment) was in force."""
    workdir, _ = slurm_run
    log = "".join(p.read_text() for p in (workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    assert "job states checked at least every 5 s (KPMS_FLOW_SLURM_STATUS_MAX_S)" in log


@pytest.mark.workflow
def test_every_fitting_job_ran_in_the_gpu_partition_with_a_gpu(slurm_run):
    _, rows = slurm_run
    assert rows and all(row["state"] == "COMPLETED" for row in rows), rows
    jax_rules = gpu_rules_in_workflow()
    by_rule: dict[str, list[dict]] = {}
    for row in rows:
        by_rule.setdefault(rule_of(row["comment"]), []).append(row)
    print("\n".join(f"{r['job']:>4} {rule_of(r['comment']):<40} {r['partition']:<4} {r['tres']}" for r in rows))
    ran_on_gpu = {rule for rule in by_rule if rule in jax_rules}
    # The demo: both searches' probes, both restarts' final fits, the selection, extraction,
    # one held-out session.
    assert ran_on_gpu == {
        "probe_kappa", "fit_arhmm", "fit_full_model", "select_model", "extract_results", "apply_model"
    }
    assert len(by_rule["probe_kappa"]) >= 4
    for rule, jobs in by_rule.items():
        for job in jobs:
            if rule in jax_rules:
                assert job["partition"] == "gpu" and "gres/gpu=1" in job["tres"], (rule, job)
            else:
                assert job["partition"] == "cpu" and "gres/gpu" not in job["tres"], (rule, job)


@pytest.mark.workflow
def test_per_session_jobs_are_bundled_into_one_submission(slurm_run):
    _, rows = slurm_run
    bundles = [r for r in rows if "sessions" in r["comment"] and "prepare_session" in r["comment"]]
    # Five demo sessions' prepare_session jobs: one sbatch, not five.
    assert len(bundles) == 1, [r["comment"] for r in rows]
    assert not any(rule_of(r["comment"]) == "prepare_session" for r in rows)


@pytest.mark.workflow
def test_bookkeeping_rules_ran_inside_snakemake_not_as_jobs(slurm_run):
    workdir, rows = slurm_run
    bookkeeping = local_rules() - {"all"}
    # search_round too: a search must not wait in the queue between its rounds
    assert {"search_round", "choose_kappa", "training_set", "run_summary"} <= bookkeeping
    submitted = {rule_of(row["comment"]) for row in rows}
    assert submitted and not submitted & bookkeeping, submitted & bookkeeping
    # ... and they did run: their outputs are there
    assert (workdir / "results" / "qa" / "training_set.tsv").exists()
    assert (workdir / "results" / "summary.tsv").exists()


@pytest.mark.workflow
def test_gpu_jobs_saw_their_gpu_and_logged_the_memory_plan(slurm_run):
    workdir, _ = slurm_run
    probe_logs = sorted((workdir / "results" / "logs" / "probe_kappa").rglob("*.log"))
    assert probe_logs
    for log in probe_logs + [workdir / "results" / "logs" / "fit_full_model" / "restart_1.log"]:
        text = log.read_text()
        # The fake GPU reached the job step: SLURM set CUDA_VISIBLE_DEVICES; JAX (CPU build
        # here) says it cannot use it, as it would on a misconfigured GPU node.
        assert "was given GPU(s) (CUDA_VISIBLE_DEVICES=0) but JAX runs on the CPU" in text, log
        assert "GPU memory plan:" in text, log


@pytest.mark.workflow
def test_a_local_run_finds_the_cluster_run_complete(slurm_run):
    """Cluster and local execution agree on the outputs and their records: switching the
    profile schedules nothing."""
    workdir, _ = slurm_run
    assert dry_run_jobs(workdir, workdir / "config" / "test.yaml") == {}
