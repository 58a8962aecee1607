"""The training set is decided once (kpms_flow.qa.training_set); the QA summary takes it."""

import pandas as pd

from kpms_flow.qa import qa_summary, training_set

THRESHOLDS = {"max_nan_fraction": 0.5, "max_outlier_fraction": 0.25, "min_frames": 300}


def qa_rows(*rows):
    return pd.DataFrame(
        [dict(zip(["session", "frames", "nan_fraction", "outlier_fraction"], r)) for r in rows]
    )


def test_training_set_names_the_reason_for_each_excluded_session():
    table = training_set(qa_rows(("a", 1000, 0.1, 0.0), ("b", 200, 0.6, 0.3)), THRESHOLDS)
    assert list(table.columns) == ["session", "frames", "used_for_training", "exclusion_reason"]
    assert table["used_for_training"].tolist() == [True, False]
    assert table.loc[1, "exclusion_reason"] == (
        "nan_fraction 0.600 > max_nan_fraction 0.5; outlier_fraction 0.300 > "
        "max_outlier_fraction 0.25; frames 200 < min_frames 300"
    )


def test_qa_summary_takes_the_training_decision_as_it_is():
    rows = qa_rows(("a", 1000, 0.1, 0.0), ("b", 1000, 0.1, 0.0), ("held", 1000, 0.9, 0.0))
    # A decision that differs from the thresholds (e.g. a later training budget) wins.
    decision = pd.DataFrame({"session": ["a", "b"], "frames": [1000, 1000],
                             "used_for_training": [True, False],
                             "exclusion_reason": ["", "left out by the budget"]})
    table = qa_summary(rows, {"a": True, "b": True, "held": False}, THRESHOLDS, decision)
    assert table["used_for_training"].tolist() == [True, False, False]
    assert table["passes_qa"].tolist() == [True, True, False]
    assert table.loc[1, "exclusion_reason"] == "left out by the budget"
    assert table.loc[2, "exclusion_reason"].startswith("train: false in the sessions table; nan_fraction")
