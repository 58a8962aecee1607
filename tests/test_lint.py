"""Snakemake's own linter and snakefmt stay clean (DEVELOPERS.md standard)."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SNAKEMAKE, local_rules, rule_blocks


@pytest.mark.workflow  # runs Snakemake (parsing the workflow takes seconds)
def test_snakemake_lint_is_clean():
    proc = subprocess.run(
        [SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


def test_snakefmt_check_is_clean():
    snakefmt = str(Path(sys.executable).with_name("snakefmt"))
    proc = subprocess.run(
        [snakefmt, "--check", "Snakefile", "workflow"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_logs_and_every_job_that_computes_records_a_benchmark():
    """Every rule that makes files has log:, and every one that runs as a job (not in
    localrules: bookkeeping of a second) has benchmark:, so its time and memory are on file."""
    local = local_rules()
    blocks = rule_blocks()
    assert {"prepare_session", "probe_kappa", "export_session", "reapply_model"} <= set(blocks)
    # Target rules only gather files (input:, nothing to run); `use rule ... with:` keeps
    # its parent's script and declares its own log and benchmark.
    targets = {name for name, block in blocks.items() if "output:" not in block}
    assert not sorted(name for name in set(blocks) - targets if "log:" not in blocks[name])
    jobs = {name for name in set(blocks) - targets - local}
    assert sorted(name for name in jobs if "benchmark:" not in blocks[name]) == []
