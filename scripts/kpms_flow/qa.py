"""Outlier QA per session (keypoint-moseq's medoid-distance outlier removal) and the
rules that exclude sessions from training."""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
from collections.abc import Mapping
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

OVER_BUDGET = "over the training budget"


def budget_frames(budget: Mapping | None, latent_dim="auto") -> int | None:
    """The frame budget of the config's ``training_budget`` section (None: no limit).

    ``max_frames`` is taken as it is. ``gpu_memory_gb`` becomes the most frames whose
    full-model fit keypoint-moseq's published estimate puts within that GPU's usable
    memory with parallel message passing, the fastest plan of
    :func:`kpms_flow.resources.plan_fit_memory` (so the fit needs neither sequential
    message passing nor mixed-map batches). The latent dimension is PCA's, chosen after
    the training set: a number in config ``latent_dim`` is used, ``auto`` plans with
    keypoint-moseq's default (10). With both keys the smaller budget wins.

    The budget comes from the config only: GPU memory is a per-job resource
    (``gpu_mem_mb``) of the fitting jobs, not known to the job that chooses the training
    set, so the budget is set where the user states the fit GPU's memory.
    """
    from . import resources

    if not budget:
        return None
    limits = []
    if budget.get("max_frames") is not None:
        limits.append(int(budget["max_frames"]))
    if budget.get("gpu_memory_gb") is not None:
        dims = latent_dim if isinstance(latent_dim, int) else resources.UNKNOWN_LATENT_DIM
        usable_mb = resources.GPU_MEMORY_USABLE_FRACTION * budget["gpu_memory_gb"] * 1024
        limits.append(int(usable_mb / resources.full_model_gpu_mb(1, dims)))
    return min(limits) if limits else None


def session_priority(seed: int, session: str) -> int:
    """A session's place in its group's seeded order: a hash of (seed, session name) only,
    so it does not depend on which other sessions the table holds."""
    digest = hashlib.sha256(f"{int(seed)}\0{session}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def group_shares(first: Mapping[str, int], group_frames: Mapping[str, int], budget: int) -> dict:
    """Each group's share ``max(first[g], c * group_frames[g])`` of the budget, with ``c``
    the fraction that makes them sum to ``budget`` (needs sum(first) <= budget <= total).

    Groups are taken in order of ``first / frames``: for the k lowest, shares are
    proportional (``c * frames``), the others hold their first session; the k whose
    ``c`` lies between its neighbours' ratios is the solution (a water-filling).
    """
    ratio = sorted(group_frames, key=lambda g: (first[g] / group_frames[g], g))
    for k in range(len(ratio), 0, -1):
        proportional, fixed = ratio[:k], ratio[k:]
        c = (budget - sum(first[g] for g in fixed)) / sum(group_frames[g] for g in proportional)
        if c * group_frames[ratio[k - 1]] >= first[ratio[k - 1]]:
            return {g: (c * group_frames[g] if g in proportional else first[g]) for g in ratio}
    return dict(first)  # budget == sum(first): every group holds its first session only


def budget_exclusions(
    frames: Mapping[str, int], groups: Mapping[str, str], budget: int, seed: int
) -> dict[str, str]:
    """Which sessions a frame budget leaves out, and why (empty when all fit).

    The rule, deterministic for given sessions, groups, frames, budget and seed:

    1. Within each group, sessions are ordered by :func:`session_priority` (seed,
       session name), ties by name.
    2. Each group's share of the budget is ``max(first, c x frames)``: ``frames`` the
       group's eligible frames, ``first`` the frames of its first session in that order,
       and ``c`` the one fraction that makes the shares sum to the budget. So shares are
       proportional to the groups' frames, except that a group whose first session alone
       is above its proportional share gets just that session (every group is
       represented). If the first sessions alone exceed the budget, no stratified subset
       exists: :class:`InputError`.
    3. Each group takes its first session, then further sessions in its order while the
       total fits its share, and stops at the first that does not (a share left unused
       is not passed on: that would couple the groups' choices).

    So the training frames never exceed the budget, each group's frames are at most its
    share and above it minus one session, and the chosen sessions of every group are a
    prefix of that group's seeded order. Stability, the property guaranteed: a
    session's place in the order depends only on the seed and its name, so appending
    sessions never reorders the existing ones; it only moves each group's cut in that
    order (the group's share changes, and a new session may take a place before the cut).
    Per group, the existing sessions chosen before and after are nested (one set contains
    the other), never a reshuffle. A larger budget (same table and seed) chooses a
    superset.

    Parameters
    ----------
    frames : mapping
        Session -> frames, of the sessions eligible for training (passing QA).
    groups : mapping
        Session -> group (the sessions table's ``group``; "" is a group too).
    budget : int
        The most training frames.
    seed : int
        The config's ``seed``.

    Returns
    -------
    dict
        Left-out session -> reason, starting with ``over the training budget``.
    """
    from .keypoints import InputError

    total = sum(int(f) for f in frames.values())
    if total <= budget:
        return {}
    order: dict[str, list[str]] = {}
    for session in sorted(frames, key=lambda s: (session_priority(seed, s), s)):
        order.setdefault(str(groups.get(session, "")), []).append(session)
    must = {group: sessions[0] for group, sessions in order.items()}
    must_frames = sum(int(frames[s]) for s in must.values())
    if must_frames > budget:
        firsts = ", ".join(f"{s} ({int(frames[s])} frames, group '{g}')" for g, s in sorted(must.items()))
        raise InputError(
            f"training_budget: {budget} frames cannot hold one session of each group; the "
            f"groups' first sessions in the seeded order need {must_frames} frames: {firsts}. "
            "Raise training_budget or use fewer groups"
        )
    group_frames = {g: sum(int(frames[s]) for s in sessions) for g, sessions in order.items()}
    shares = group_shares(
        {g: int(frames[s]) for g, s in must.items()}, group_frames, budget
    )
    left_out = {}
    for group, sessions in sorted(order.items()):
        taken, used = 1, int(frames[sessions[0]])
        for session in sessions[1:]:
            if used + int(frames[session]) > shares[group]:
                break
            taken, used = taken + 1, used + int(frames[session])
        for rank, session in enumerate(sessions[taken:], start=taken + 1):
            left_out[session] = (
                f"{OVER_BUDGET} ({budget} frames; group '{group}' has a share of "
                f"{math.floor(shares[group])} frames, filled by {taken} of its "
                f"{len(sessions)} sessions; this one is {rank} in the seeded order)"
            )
    return left_out


def training_set(
    qa_rows: pd.DataFrame,
    thresholds,
    budget: Mapping | None = None,
    groups: Mapping[str, str] | None = None,
    seed: int = 0,
    latent_dim="auto",
) -> pd.DataFrame:
    """The one decision of which ``train: true`` sessions train the model, and why not.

    Sessions failing the QA thresholds are left out first; when the rest exceed the
    training budget (:func:`budget_frames`), :func:`budget_exclusions` chooses a
    stratified subset and the others are left out ``over the training budget``. Every
    left-out session still gets labels: extract_results applies the frozen model to it.
    Without a budget, or when all fit, the table is the QA decision alone.

    Parameters
    ----------
    qa_rows : pandas.DataFrame
        The QA rows (``results/sessions/<s>/qa.tsv``) of the training sessions.
    thresholds : dict
        The config's ``qa`` section.
    budget : dict, optional
        The config's ``training_budget`` section.
    groups : dict, optional
        Session -> group of the sessions table (needed only with a budget).
    seed : int
        The config's ``seed`` (orders the sessions within each group).
    latent_dim : int or "auto"
        The config's ``latent_dim`` (for a budget from ``gpu_memory_gb``).
    """
    table = qa_rows[["session", "frames"]].copy()
    table["exclusion_reason"] = [exclusion_reason(row, thresholds) for _, row in qa_rows.iterrows()]
    limit = budget_frames(budget, latent_dim)
    if limit is not None:
        passing = table[table["exclusion_reason"] == ""]
        left_out = budget_exclusions(
            dict(zip(passing["session"], passing["frames"])), groups or {}, limit, seed
        )
        table["exclusion_reason"] = [
            left_out.get(session, reason)
            for session, reason in zip(table["session"], table["exclusion_reason"])
        ]
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
