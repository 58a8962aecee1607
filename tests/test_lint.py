"""Snakemake's own linter and snakefmt stay clean (DEVELOPERS.md standard)."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SNAKEMAKE


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
