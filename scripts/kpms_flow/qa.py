"""Outlier QA per session (keypoint-moseq's medoid-distance outlier removal) and the
rules that exclude sessions from training."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

QA_COLUMNS = [
    "session",
    "frames",
    "bodyparts",
    "nan_fraction",
    "outlier_fraction",
    "interpolated_fraction",
    "fps",
    "dropped_bodyparts",
]


@dataclass
class QAResult:
    clean: object  # SessionKeypoints after interpolation
    outlier_mask: np.ndarray  # (frames, bodyparts) medoid-distance outliers
    missing_mask: np.ndarray  # (frames, bodyparts) NaN in the input
    thresholds: np.ndarray  # (bodyparts,)
    row: dict


def outlier_qa(
    kp, outlier_scale_factor: float, plot_path: str | Path | None = None, use_bodyparts=None
) -> QAResult:
    """Run keypoint-moseq's ``outlier_removal`` on the modelled bodyparts of one session.

    keypoint-moseq writes its QA plot under ``<project_dir>/QA/plots/...``; we give it a
    scratch project so the plot can be moved into place atomically.

    Parameters
    ----------
    kp : SessionKeypoints
        The session as loaded.
    outlier_scale_factor : float
        keypoint-moseq's ``outlier_scale_factor``.
    plot_path : path-like, optional
        Where keypoint-moseq's outlier plot goes.
    use_bodyparts : list of str, optional
        The bodyparts the model uses (config key ``use_bodyparts``); the session's other
        points (an LED, arena corners...) are left out before QA, so they neither count in
        the QA measures nor move the medoid, and are listed in the row's
        ``dropped_bodyparts``. None: all bodyparts.

    Returns
    -------
    QAResult
        ``clean`` holds the modelled bodyparts only; ``row`` has :data:`QA_COLUMNS`.

    Raises
    ------
    InputError
        The session lacks a used bodypart.
    """
    import keypoint_moseq as kpms
    from keypoint_moseq.util import find_medoid_distance_outliers

    from .atomic import atomic_path
    from .keypoints import select_bodyparts

    kp, dropped = select_bodyparts(kp, use_bodyparts)
    raw = np.asarray(kp.coordinates, dtype=float)
    outliers = find_medoid_distance_outliers(raw, outlier_scale_factor=outlier_scale_factor)
    missing = np.isnan(raw).any(axis=-1)
    outlier_mask = outliers["mask"] & ~missing

    with tempfile.TemporaryDirectory(prefix="kpms_flow_qa_") as scratch:
        coords, confs = kpms.outlier_removal(
            {kp.session: raw.copy()},
            {kp.session: np.asarray(kp.confidences, dtype=float).copy()},
            scratch,
            overwrite=True,
            outlier_scale_factor=outlier_scale_factor,
            bodyparts=list(kp.bodyparts),
        )
        if plot_path is not None:
            made = Path(scratch, "QA", "plots", "keypoint_distance_outliers", f"{kp.session}.png")
            with atomic_path(plot_path) as tmp:
                shutil.copyfile(made, tmp)

    clean = replace(kp, coordinates=coords[kp.session], confidences=confs[kp.session])
    n = missing.size
    row = {
        "session": kp.session,
        "frames": kp.n_frames,
        "bodyparts": len(kp.bodyparts),
        "nan_fraction": float(missing.sum() / n),
        "outlier_fraction": float(outlier_mask.sum() / n),
        "interpolated_fraction": float((missing | outlier_mask).sum() / n),
        "fps": np.nan if kp.fps is None else float(kp.fps),
        "dropped_bodyparts": ", ".join(dropped),
    }
    return QAResult(clean, outlier_mask, missing, outliers["thresholds"], row)


def exclusion_reason(row, thresholds) -> str:
    """Why a session fails the training thresholds ("" when it passes)."""
    reasons = []
    if row["nan_fraction"] > thresholds["max_nan_fraction"]:
        reasons.append(
            f"nan_fraction {row['nan_fraction']:.3f} > max_nan_fraction "
            f"{thresholds['max_nan_fraction']}"
        )
    if row["outlier_fraction"] > thresholds["max_outlier_fraction"]:
        reasons.append(
            f"outlier_fraction {row['outlier_fraction']:.3f} > max_outlier_fraction "
            f"{thresholds['max_outlier_fraction']}"
        )
    if row["frames"] < thresholds["min_frames"]:
        reasons.append(f"frames {row['frames']} < min_frames {thresholds['min_frames']}")
    return "; ".join(reasons)


TRAINING_SET_COLUMNS = ["session", "frames", "used_for_training", "exclusion_reason"]


def training_set(qa_rows: pd.DataFrame, thresholds) -> pd.DataFrame:
    """The one decision of which ``train: true`` sessions train the model, and why not.

    Parameters
    ----------
    qa_rows : pandas.DataFrame
        The QA rows (``results/sessions/<s>/qa.tsv``) of the training sessions.
    thresholds : dict
        The config's ``qa`` section.
    """
    table = qa_rows[["session", "frames"]].copy()
    table["exclusion_reason"] = [exclusion_reason(row, thresholds) for _, row in qa_rows.iterrows()]
    table["used_for_training"] = table["exclusion_reason"] == ""
    return table[TRAINING_SET_COLUMNS]


def qa_summary(
    qa_rows: pd.DataFrame, train_flags: dict[str, bool], thresholds, training: pd.DataFrame
) -> pd.DataFrame:
    """One row per session: QA measurements, requested training, decision and reason.

    ``training`` is :func:`training_set`'s decision, taken as it is.
    """
    table = qa_rows.copy()
    table["train_requested"] = [bool(train_flags[s]) for s in table["session"]]
    reasons = [exclusion_reason(row, thresholds) for _, row in table.iterrows()]
    table["passes_qa"] = [r == "" for r in reasons]
    used = set(training.loc[training["used_for_training"].astype(bool), "session"])
    decided = dict(zip(training["session"], training["exclusion_reason"]))
    table["used_for_training"] = table["session"].isin(used)
    table["exclusion_reason"] = [
        decided.get(session, r)
        if requested
        else ("train: false in the sessions table" + (f"; {r}" if r else ""))
        for session, r, requested in zip(table["session"], reasons, table["train_requested"])
    ]
    return table
