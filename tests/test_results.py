"""The per-session CSV: keypoint-moseq's columns in its order, after a frame and time axis."""

from __future__ import annotations

import numpy as np
import pytest

from kpms_flow.results import session_table

KPMS_COLUMNS = ["syllable", "centroid x", "centroid y", "heading", "latent_state 0", "latent_state 1"]


def fake_results(n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "syllable": rng.integers(0, 3, n),
        "centroid": rng.normal(size=(n, 2)),
        "heading": rng.normal(size=n),
        "latent_state": rng.normal(size=(n, 2)),
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
