"""Kappa searches through the real workflow: dry runs before, during and after a search,
and a real SIGKILL in the middle of a search followed by a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, SNAKEMAKE, dry_run_jobs, snakemake, write_demo_config

pytestmark = pytest.mark.workflow


def probe_files(workdir: Path) -> dict[str, int]:
    """Finished probe result files and their modification times (ns)."""
    return {
        str(p.relative_to(workdir)): p.stat().st_mtime_ns
        for p in sorted((workdir / "results" / "search").glob("*/round*/probe*.tsv"))
    }


def test_fresh_dry_run_shows_both_searches_first_rounds(fresh_dry_run):
    jobs = fresh_dry_run
    # Round 1 of each stage is known before anything ran: 2 probes each (test config).
    assert jobs["probe_kappa"] == 4
    assert jobs["search_round"] == 2 and jobs["choose_kappa"] == 2
    assert jobs["start_kappa_search"] == 2
    # one final fit chain per restart (test config: 2), then the selection
    assert jobs["fit_arhmm"] == 2 and jobs["fit_full_model"] == 2 and jobs["select_model"] == 1


# Slow (minutes): tests/test_fit_recovery.py kills and resumes a final fit in the default
# suite; this one also checks that finished probes are kept across a kill.
@pytest.mark.slow
def test_killed_search_resumes_without_rerunning_probes(tmp_path, demo_reference):
    """SIGKILL the whole Snakemake process group once the first probes are done."""
    config = write_demo_config(tmp_path)
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "2",
           "--resources", "gpu=2", "--configfile", str(config)]
    env = dict(os.environ, KPMS_FLOW_JAX_CACHE=str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    try:
        while time.time() < deadline and proc.poll() is None:
            done = probe_files(tmp_path)
            if any("arhmm/round1" in p for p in done):
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before = probe_files(tmp_path)
    assert before, "no probe had finished before the kill"
    assert not (tmp_path / "results" / "search" / "full_model" / "chosen.tsv").exists()

    # Every output is written atomically, so an output that exists is complete even when
    # Snakemake was killed before it recorded the job as finished: the profiles set
    # ignore-incomplete, and so does this restart.
    # The dry run in the middle of the search shows what is left, not the finished probes.
    snakemake(tmp_path, "--unlock", config=config)
    middle = dry_run_jobs(tmp_path, config, "--ignore-incomplete")
    assert middle["probe_kappa"] == 4 - len(before)
    assert middle["fit_full_model"] == 2

    snakemake(tmp_path, "--ignore-incomplete", "--resources", "gpu=2", config=config)
    after = probe_files(tmp_path)
    assert {p: after[p] for p in before} == before, "a finished probe was rerun"

    # Same choices and same syllables as the uninterrupted run.
    for stage in ("arhmm", "full_model"):
        resumed = pd.read_csv(tmp_path / "results" / "search" / stage / "trace.tsv", sep="\t")
        reference = pd.read_csv(demo_reference / "results" / "search" / stage / "trace.tsv", sep="\t")
        pd.testing.assert_frame_equal(resumed, reference)
    for csv in (demo_reference / "results" / "syllables").glob("*.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "results" / "syllables" / csv.name), pd.read_csv(csv)
        )
    # Probe checkpoints are temporary outputs: Snakemake deleted each once nothing needed it
    # (the chosen ones after their stage's final fit had taken them as input), except those
    # of probes that finished in the killed run: Snakemake never recorded those jobs as
    # finished, so it does not remove their temporary outputs (README, "When a run is
    # interrupted"; the same at 7ee4848, before confirmation).
    left = {str(p.parent.relative_to(tmp_path)) + ".tsv"
            for p in (tmp_path / "results" / "search").glob("*/round*/probe*/checkpoint.h5")}
    assert left <= set(before), (left, before)
    # Nothing left to do (the probe Snakemake did not see finish stays marked incomplete in
    # its metadata: the profiles' ignore-incomplete, or --cleanup-metadata, accepts it).
    assert dry_run_jobs(tmp_path, config, "--ignore-incomplete") == {}


def test_search_outputs(demo_reference):
    for stage in ("arhmm", "full_model"):
        folder = demo_reference / "results" / "search" / stage
        trace = pd.read_csv(folder / "trace.tsv", sep="\t")
        assert list(trace.columns[:9]) == ["stage", "round", "probe", "kappa", "log10_kappa",
                                           "median_duration_frames", "median_duration_ms",
                                           "syllables", "iterations"]
        assert trace["chosen"].sum() == 1
        chosen = pd.read_csv(folder / "chosen.tsv", sep="\t").iloc[0]
        assert chosen["status"] in ("converged", "exhausted")
        assert chosen["rounds"] == trace["round"].max()
        assert (folder / "trace.png").stat().st_size > 1000
    arhmm = pd.read_csv(demo_reference / "results/search/arhmm/chosen.tsv", sep="\t").iloc[0]
    full = pd.read_csv(demo_reference / "results/search/full_model/trace.tsv", sep="\t")
    # Full-model probes search below (and up to) the AR-HMM's kappa.
    assert (full["kappa"] <= arhmm["kappa"] * 1.0001).all()


def test_final_fits_take_the_chosen_probe_checkpoint_as_a_declared_input(demo_reference, tmp_path):
    """The hand-off from a search to its final fit is a file Snakemake knows (recorded in its
    metadata), not a path written inside chosen.tsv: choose_kappa takes the chosen probe's
    checkpoint as input and links it to chosen_checkpoint.h5, the final fit's input; the
    probes' own checkpoints were temporary and are gone."""
    proc = snakemake(demo_reference, "--detailed-summary", "--configfile",
                     str(demo_reference / "config" / "test.yaml"))
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    header = rows[0]
    by_output = {row[0]: dict(zip(header, row)) for row in rows[1:] if len(row) == len(header)}
    for stage in ("arhmm", "full_model"):
        folder = f"results/search/{stage}"
        chosen = pd.read_csv(demo_reference / folder / "chosen.tsv", sep="\t").iloc[0]
        assert "checkpoint" not in chosen.index
        probe = f"{folder}/round{chosen['round']}/probe{chosen['probe']}/checkpoint.h5"
        assert probe in by_output[f"{folder}/chosen_checkpoint.h5"]["input-file(s)"].split(",")
        fit = by_output[f"results/fits/restart_0/{stage}/checkpoint.h5"]
        assert f"{folder}/chosen_checkpoint.h5" in fit["input-file(s)"].split(","), fit
        assert not (demo_reference / probe).exists()
        assert (demo_reference / folder / "chosen_checkpoint.h5").stat().st_size > 0
        metrics = pd.read_csv(demo_reference / "results/fits/restart_0" / stage / "metrics.tsv", sep="\t").iloc[0]
        assert metrics["kappa"] == pytest.approx(chosen["kappa"])
        assert metrics["median_duration_frames"] > 0
