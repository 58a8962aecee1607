"""The per-session CSV: keypoint-moseq's columns in its order, after a frame and time axis."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from kpms_flow.results import keypoint_moseq_csv, session_table

KPMS_COLUMNS = ["syllable", "centroid x", "centroid y", "heading", "latent_state 0", "latent_state 1"]


def fake_results(n: int = 5, dims: int = 2, latent_dim: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "syllable": rng.integers(0, 3, n),
        "centroid": rng.normal(size=(n, dims)) * 100,
        "heading": rng.normal(size=n),
        "latent_state": rng.normal(size=(n, latent_dim)),
    }


def test_csv_has_frame_and_time_then_keypoint_moseqs_columns():
    results = fake_results()
    table = session_table(results, fps=30.0)
    assert list(table.columns) == ["frame", "time_s", *KPMS_COLUMNS]
    assert table["frame"].tolist() == [0, 1, 2, 3, 4]
    assert table["time_s"].to_numpy() == pytest.approx(np.arange(5) / 30.0)
    np.testing.assert_array_equal(table["syllable"], results["syllable"])
    # keypoint-moseq's own values, as its save_results_as_csv rounds them
    np.testing.assert_array_equal(table["heading"], results["heading"].round(4))


def test_time_is_empty_when_the_frame_rate_is_unknown():
    table = session_table(fake_results(), fps=None)
    assert table["frame"].tolist() == [0, 1, 2, 3, 4] and table["time_s"].isna().all()


@pytest.mark.parametrize(
    "results",
    [
        fake_results(n=500),
        fake_results(n=300, dims=3, latent_dim=4),  # 3D keypoints: a centroid z column
        {k: v for k, v in fake_results(n=50).items() if k != "latent_state"},
        {"syllable": np.arange(7), "heading": np.full(7, np.nan)},  # unknown headings
    ],
    ids=["2d", "3d", "no_latent_state", "syllables_and_nan"],
)
def test_csv_is_the_one_keypoint_moseq_writes_byte_for_byte(results, tmp_path):
    """keypoint_moseq_csv copies save_results_as_csv so that export jobs need not import
    keypoint-moseq; a keypoint-moseq that writes its CSV differently fails here."""
    import keypoint_moseq as kpms

    kpms.save_results_as_csv({"s1": results}, save_dir=str(tmp_path))
    assert keypoint_moseq_csv(results) == (tmp_path / "s1.csv").read_text()
    # the table keypoint-moseq's file reads back as, after the frame and time columns
    expected = pd.read_csv(tmp_path / "s1.csv")
    pd.testing.assert_frame_equal(session_table(results, fps=10.0).iloc[:, 2:], expected, check_exact=True)


def test_the_csv_is_written_without_importing_keypoint_moseq_or_jax():
    """export_session's table: its job stays light (benchmarks/README.md, rule start-up)."""
    code = (
        "import sys, numpy as np; from kpms_flow.results import session_table; "
        "session_table({'syllable': np.arange(3), 'heading': np.zeros(3)}, fps=30.0); "
        "print(sorted(m for m in ('keypoint_moseq', 'jax', 'jax_moseq') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT / "scripts")
    assert proc.stdout.strip() == "[]"
