"""Whether a fit has levelled off: its log joint likelihood at every saved iteration and a
test for a trend in the last part (the model selection's convergence check)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Fewer saved snapshots than this say nothing about a trend (still_trending).
TREND_MIN_POINTS = 4


def _log_joint_likelihood(data, model) -> float:
    """Sum of jax-moseq's log joint likelihood terms of one snapshot on its data."""
    params = model["params"]
    if "delta_h" in params:
        # A location-aware model (keypoint-moseq's location_aware=True).
        from jax_moseq.models.allo_keypoint_slds import log_joint_likelihood

        terms = log_joint_likelihood(
            **data,
            **model["states"],
            **params,
            **model["hypparams"]["obs_hypparams"],
            s_0=model["noise_prior"],
        )
    else:
        from jax_moseq.models.keypoint_slds import model_likelihood

        terms = model_likelihood(data, **model)
    return float(sum(float(value) for value in terms.values()))


def convergence_trace(checkpoint_path, data: dict | None = None) -> pd.DataFrame:
    """The model's log joint likelihood at every saved snapshot of a fit.

    keypoint-moseq tracks no likelihood while fitting; jax-moseq's
    ``keypoint_slds.model_likelihood`` (``log_joint_likelihood``) gives the log joint
    density of the sampler's state, as terms: ``z`` (syllable transitions under ``pi``),
    ``x`` (latent trajectories under the AR dynamics ``Ab``, ``Q``), ``Y`` (keypoints
    given ``x``, centroid ``v``, heading ``h``, noise scales ``s``), ``s`` (noise scales
    under their prior) and ``v`` (centroid movement). The trace is their sum, over
    unmasked frames. Location-aware models (``allo_keypoint_slds``) use that module's
    ``log_joint_likelihood``, which adds heading and centroid terms per syllable.

    Parameters
    ----------
    checkpoint_path : path-like
        A keypoint-moseq checkpoint.
    data : dict, optional
        The training data (``Y``, ``conf``, ``mask``) when already in memory; read from
        the checkpoint otherwise. One snapshot is in memory at a time.

    Returns
    -------
    pandas.DataFrame
        Columns ``iteration`` and ``log_likelihood``, one row per saved snapshot, in
        iteration order.
    """
    import h5py
    import keypoint_moseq  # noqa: F401  (x64 on before jax-moseq runs)
    from keypoint_moseq.io import load_hdf5

    from .selection import _progress

    with h5py.File(checkpoint_path, "r") as f:
        iterations = sorted(int(i) for i in f["model_snapshots"])
    if data is None:
        data = load_hdf5(str(checkpoint_path), "data")
    rows = []
    for iteration in iterations:
        model = load_hdf5(str(checkpoint_path), f"model_snapshots/{iteration}")
        rows.append({"iteration": iteration, "log_likelihood": _log_joint_likelihood(data, model)})
        del model
        _progress()
    return pd.DataFrame(rows, columns=["iteration", "log_likelihood"])


def still_trending(
    trace: pd.DataFrame,
    tail_fraction: float = 0.25,
    alpha: float = 0.05,
    min_points: int = TREND_MIN_POINTS,
    relative: float = 0.01,
) -> bool:
    """Whether the last part of a convergence trace still drifts.

    Rule: take the last ``tail_fraction`` of the saved snapshots (at least
    ``min_points``) and fit a straight line to log-likelihood against iteration. The fit
    is still trending when

    * the line's slope differs from zero at significance ``alpha`` (5 %, two-sided
      t-test of the slope, scipy's ``linregress``): a sampler at equilibrium fluctuates
      around a level, and the test asks whether the drift over the tail is larger than
      those fluctuations explain. It compares the drift with the scatter around the line,
      scaled for the number of points, so a short tail needs a larger drift, and a flat
      trace is flagged in about ``alpha`` of cases (fluctuations of snapshots 25 sweeps
      apart are close to independent; correlated ones make the test more eager). The
      level is a warning's: simulated flat traces of 8 to 40 snapshots were flagged in
      5 to 6.5 % of cases, and a tail of 5 snapshots rising by one fluctuation's standard
      deviation per snapshot was caught in 61 % (1 % would catch 18 %); and
    * the line's change over the tail (up or down) exceeds ``relative`` (1 %) of the whole
      trace's range: a drift that small next to the climb from the starting state does
      not change the fit.

    Parameters
    ----------
    trace : pandas.DataFrame
        Columns ``iteration`` and ``log_likelihood`` (:func:`convergence_trace`).
    tail_fraction, alpha, min_points, relative : float, float, int, float
        The rule's settings (above).

    Returns
    -------
    bool
        True when still trending; also when a value is not finite (a broken fit). False
        when the trace has fewer than ``min_points`` snapshots: too few to tell.
    """
    from scipy.stats import linregress

    trace = trace.sort_values("iteration")
    values = trace["log_likelihood"].to_numpy(float)
    iterations = trace["iteration"].to_numpy(float)
    if len(values) < min_points:
        return False
    if not np.all(np.isfinite(values)):
        return True
    m = max(min_points, math.ceil(tail_fraction * len(values)))
    tail_x, tail_y = iterations[-m:], values[-m:]
    if np.ptp(tail_y) == 0:
        return False
    fit = linregress(tail_x, tail_y)
    change = abs(fit.slope * (tail_x[-1] - tail_x[0]))
    return bool(fit.pvalue < alpha and change > relative * float(np.ptp(values)))
