"""Kappa search: parallel rounds of probe fits that home in on a target median duration.

The seed's practice was a serial bisection in log10 kappa. Here each round fits several
kappas at once (one job each, one GPU each on a cluster); the next round's kappas come
from interpolating log duration against log kappa through a monotone (isotonic) fit of
every probe so far, which tolerates noisy and non-monotone points and flat stretches.
All state is in per-round files: a probe's result table and a round's decision table.

Median durations drift as a fit goes on (issue 14; benchmarks/README.md "Duration drift"),
so a short probe inside the window does not end a search that confirms: the best short
probes are continued to the stage's full length (``confirm_probes``), and only a
full-length fit inside the window converges. When the continued fits miss, their drift
(full-length / probe duration) moves the target the short probes must hit, and the next
round fits full length directly at the kappas that target predicts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger("kpms_flow")

PROBE_COLUMNS = [
    "stage",
    "round",
    "probe",
    "kappa",
    "log10_kappa",
    "median_duration_frames",
    "median_duration_ms",
    "syllables",
    "iterations",
    "source_round",
    "source_probe",
]

# A probe continued from an earlier probe's checkpoint names it; a fresh probe has -1.
NO_SOURCE = -1


@dataclass(frozen=True)
class Window:
    """Target median syllable duration, in frames."""

    low: float
    high: float

    @property
    def centre(self) -> float:
        # Geometric centre: durations scale multiplicatively with log kappa steps.
        return math.sqrt(self.low * self.high)

    def contains(self, duration: float) -> bool:
        return self.low <= duration <= self.high

    def distance(self, duration: float) -> float:
        """How far a duration is from the centre, in log units (0 = centre)."""
        return abs(math.log(max(duration, 1e-9)) - math.log(self.centre))


def window_in_frames(target_ms, fps: float | None) -> Window:
    """Convert the configured window (ms) to frames; needs the training frame rate."""
    if fps is None or not np.isfinite(fps) or fps <= 0:
        raise ValueError(
            "config key 'kappa_search.target_duration_ms' is in milliseconds but the "
            "training sessions' frame rate is unknown: give fps in the sessions table or "
            "config key 'fps'"
        )
    low, high = sorted(float(v) for v in target_ms)
    return Window(low * fps / 1000.0, high * fps / 1000.0)


def isotonic(y: np.ndarray) -> np.ndarray:
    """Non-decreasing least-squares fit (pool adjacent violators)."""
    blocks = [[float(v), 1] for v in y]
    merged: list[list[float]] = []
    for value, weight in blocks:
        merged.append([value, weight])
        while len(merged) > 1 and merged[-2][0] > merged[-1][0]:
            v2, w2 = merged.pop()
            v1, w1 = merged.pop()
            merged.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2])
    return np.concatenate([[v] * int(w) for v, w in merged])


def predict_log_kappa(log_kappa, durations, target: float) -> tuple[float, float, float]:
    """Predicted log10 kappa for ``target`` and the bracket around it.

    Returns (prediction, lower, upper); lower/upper are -inf/+inf when the target lies
    beyond the probed range on that side.
    """
    order = np.argsort(log_kappa)
    x = np.asarray(log_kappa, float)[order]
    # Durations roughly multiply per decade of kappa: interpolate their logarithm.
    raw = np.log(np.maximum(np.asarray(durations, float)[order], 1e-9))
    y = isotonic(raw)
    t = math.log(target)
    if t < y[0]:
        return x[0], -math.inf, x[0]
    if t > y[-1]:
        return x[-1], x[-1], math.inf
    # First point at or above the target; the bracket spans the flat stretches around it.
    above = int(np.argmax(y >= t))
    if y[above] == t or above == 0:
        same = np.flatnonzero(y == y[above])
        lo = x[same[0] - 1] if same[0] > 0 else x[same[0]]
        hi = x[same[-1] + 1] if same[-1] + 1 < len(x) else x[same[-1]]
        return float(np.mean(x[same])), float(lo), float(hi)
    # The bracket starts at the last point below the target, or further down when noisy
    # points below ``above`` lie at or above it. Ties (flat stretches of equal medians,
    # all below the target) do not widen it: the crossing lies beyond them.
    below = above - 1
    disagree = np.flatnonzero(raw[:above] >= t)
    if len(disagree):
        below = max(int(disagree[0]) - 1, 0)
    x0, x1, y0, y1 = x[above - 1], x[above], y[above - 1], y[above]
    prediction = x0 + (t - y0) * (x1 - x0) / (y1 - y0)
    return float(prediction), float(x[below]), float(x1)


def next_log_kappas(history: pd.DataFrame, window: Window, bounds, n_probes: int) -> list[float]:
    """Kappas (log10) for the next round, placed around the predicted target.

    Probes are spread over the bracket that contains the target, not over the whole
    range, so that one round usually narrows the search to within the window.
    """
    lo_bound, hi_bound = bounds
    x = history["log10_kappa"].to_numpy(float)
    d = history["median_duration_frames"].to_numpy(float)
    prediction, lower, upper = predict_log_kappa(x, d, window.centre)
    if math.isinf(lower):
        # Durations already too long at the smallest kappa probed: go lower.
        lower, upper = lo_bound, x.min()
        prediction = (lower + upper) / 2
    elif math.isinf(upper):
        lower, upper = x.max(), hi_bound
        prediction = (lower + upper) / 2
    lower, upper = max(lower, lo_bound), min(upper, hi_bound)
    width = max(upper - lower, 1e-3)
    # Evenly spaced steps around the prediction, clipped to the bracket's interior.
    step = width / (n_probes + 1)
    offsets = (np.arange(n_probes) - (n_probes - 1) / 2) * step
    centre = min(max(prediction, lower + step * n_probes / 2), upper - step * n_probes / 2)
    grid = np.clip(centre + offsets, lower + step / 2, upper - step / 2)
    return [float(v) for v in grid]


def initial_log_kappas(bounds, n_probes: int) -> list[float]:
    """First round: evenly over the range, away from its ends."""
    lo, hi = bounds
    if not lo < hi:
        raise ValueError(f"kappa search bounds must increase, got {lo}..{hi} (log10 kappa)")
    return [lo + (hi - lo) * (i + 0.5) / n_probes for i in range(n_probes)]


def decision_table(rows: list[dict], bounds, window: Window) -> pd.DataFrame:
    """A round's decision; it carries the stage's range and window on to the next round.

    Each ``continue`` row is one probe of the next round: its kappa, its ``iterations``
    (-1: the search's probe length) and, for a probe continued from an earlier one, that
    probe's ``source_round`` and ``source_probe``.
    """
    table = _fresh_by_default(pd.DataFrame(rows), ("iterations", "source_round", "source_probe"))
    table["log10_lower"], table["log10_upper"] = bounds
    table["window_low_frames"], table["window_high_frames"] = window.low, window.high
    return table


def read_decision(path) -> tuple[pd.DataFrame, tuple[float, float], Window]:
    """The one reader of a round's decision file: its rows, the stage's range, the window."""
    # Decisions written before probes could be continued lack the probe columns.
    table = _fresh_by_default(pd.read_csv(path, sep="\t"), ("iterations", "source_round", "source_probe"))
    first = table.iloc[0]
    bounds = (float(first["log10_lower"]), float(first["log10_upper"]))
    return table, bounds, Window(float(first["window_low_frames"]), float(first["window_high_frames"]))


@dataclass(frozen=True)
class SearchOutcome:
    """What a decision file says about the search: go on, or which probe it chose."""

    status: str  # continue, converged or exhausted
    chosen_round: int
    chosen_probe: int

    @property
    def finished(self) -> bool:
        return self.status != "continue"


def search_outcome(decision_path) -> SearchOutcome:
    """The status and chosen probe of a decision file (see :func:`read_decision`)."""
    first = read_decision(decision_path)[0].iloc[0]
    return SearchOutcome(str(first["status"]), int(first["chosen_round"]), int(first["chosen_probe"]))


def first_round(bounds, window: Window, n_probes: int) -> pd.DataFrame:
    kappas = [10.0**k for k in initial_log_kappas(bounds, n_probes)]
    return decision_table(_probes(kappas), bounds, window)


# A range is extended when the target lies beyond it and a probe sits this close to its edge
# (log10 kappa): the data, not the configured range, decide where the target is.
EDGE_DECADES = 1.0
# Without a usable slope (flat durations at the edge), extend by this much (log10 kappa).
FLAT_EXTENSION_DECADES = 2.0
DEFAULT_HARD_LIMITS = (-3.0, 20.0)


def extended_bounds(history: pd.DataFrame, window: Window, bounds,
                    limits=DEFAULT_HARD_LIMITS) -> tuple[float, float]:
    """The range, moved past its edge when the probes put the target beyond it.

    When every probe's duration lies on one side of the target and the extreme probe is
    within :data:`EDGE_DECADES` of the range's edge, that edge moves out to where the
    probes' log-duration slope puts the target, with half as much again for safety (at
    least one decade, :data:`FLAT_EXTENSION_DECADES` when the durations are flat), never
    past ``limits`` (config ``kappa_search.log10_kappa_limits``).
    """
    lo, hi = bounds
    x = history["log10_kappa"].to_numpy(float)
    y = np.log(np.maximum(history["median_duration_frames"].to_numpy(float), 1e-9))
    t = math.log(window.centre)
    order = np.argsort(x)
    fitted = isotonic(y[order])
    span = x[order][-1] - x[order][0]
    slope = (fitted[-1] - fitted[0]) / span if span > 0 else 0.0

    def reach(edge_value, edge_x, direction):
        needed = abs(t - edge_value) / slope if slope > 0 else FLAT_EXTENSION_DECADES
        return edge_x + direction * max(1.5 * needed, 1.0)

    if t < fitted[0] and x.min() - lo <= EDGE_DECADES:
        lo = max(min(lo, reach(fitted[0], x.min(), -1)), limits[0])
    elif t > fitted[-1] and hi - x.max() <= EDGE_DECADES:
        hi = min(max(hi, reach(fitted[-1], x.max(), +1)), limits[1])
    return float(lo), float(hi)


def _choice(candidates: pd.DataFrame, window: Window, status: str) -> dict:
    distance = [window.distance(v) for v in candidates["median_duration_frames"]]
    best = candidates.iloc[int(np.argmin(distance))]
    return {"status": status, "probe": -1, "kappa": float(best["kappa"]),
            "chosen_round": int(best["round"]), "chosen_probe": int(best["probe"])}


def _probes(kappas, iterations=NO_SOURCE, sources=None) -> list[dict]:
    sources = sources or [(NO_SOURCE, NO_SOURCE)] * len(kappas)
    return [{"status": "continue", "probe": i, "kappa": float(k), "chosen_round": -1,
             "chosen_probe": -1, "iterations": iterations, "source_round": int(src[0]),
             "source_probe": int(src[1])} for i, (k, src) in enumerate(zip(kappas, sources))]


def decide(history: pd.DataFrame, window: Window, round_: int, max_rounds: int, bounds,
           n_probes: int, limits=DEFAULT_HARD_LIMITS, stage_iters: int | None = None,
           confirm_probes: int = 0) -> pd.DataFrame:
    """The decision after ``round_``: converged, exhausted, or the next round's probes.

    Without confirmation (``confirm_probes`` 0, or probes as long as the stage) a probe
    inside the window converges. With it, only a fit of ``stage_iters`` iterations inside
    the window converges, and the next round is, in this order of preference:

    1. the ``confirm_probes`` short probes nearest the target, continued to the stage's
       length (the target is the window divided by the drift seen so far, when a short
       probe lies inside that target);
    2. once continued fits have missed, fresh full-length fits at the kappas predicted
       from the full-length fits (when they bracket the window) or from the short probes
       and the drift;
    3. otherwise ``n_probes`` short probes placed as before, in a range extended past its
       edge where the probes put the target beyond it.

    Out of rounds, the search is exhausted and takes the closest full-length fit (the
    closest probe when there is none).
    """
    history = with_sources(history)
    confirming = confirm_probes > 0 and stage_iters is not None
    decisive = history[history["iterations"] >= stage_iters] if confirming else history
    inside = decisive[[window.contains(v) for v in decisive["median_duration_frames"]]]
    if len(inside):
        return decision_table([_choice(inside, window, "converged")], bounds, window)
    if round_ >= max_rounds:
        pool = decisive if len(decisive) else history
        return decision_table([_choice(pool, window, "exhausted")], bounds, window)

    short = history[history["iterations"] < stage_iters] if confirming else history
    if not len(short):  # probes as long as the stage: each is already decisive
        confirming, short = False, history
    drift = drift_factor(history, stage_iters) if confirming else None
    target = window if drift is None else Window(window.low / drift, window.high / drift)
    if confirming:
        continued = set(zip(decisive["source_round"], decisive["source_probe"]))
        fresh = short[[(r, p) not in continued for r, p in zip(short["round"], short["probe"])]]
        if any(target.contains(v) for v in fresh["median_duration_frames"]):
            order = np.argsort([target.distance(v) for v in fresh["median_duration_frames"]])
            picked = fresh.iloc[order[:confirm_probes]]
            rows = _probes(picked["kappa"], stage_iters,
                           list(zip(picked["round"], picked["probe"])))
            log.info("confirming %d probe(s) at the stage's length (%d iterations)",
                     len(rows), stage_iters)
            return decision_table(rows, bounds, window)
        if drift is not None:
            durations = decisive["median_duration_frames"]
            brackets = (durations < window.centre).any() and (durations > window.centre).any()
            basis, aim = (decisive, window) if brackets else (short, target)
            new_bounds = extended_bounds(basis, aim, bounds, limits)
            kappas = next_log_kappas(basis, aim, new_bounds, confirm_probes)
            log.info("full-length fits drift x%.2f from their probes: fitting %d kappa(s) "
                     "at full length", drift, len(kappas))
            return decision_table(_probes([10.0**k for k in kappas], stage_iters),
                                  new_bounds, window)

    new_bounds = extended_bounds(short, target, bounds, limits)
    if new_bounds != tuple(bounds):
        log.warning("the target lies beyond log10 kappa %.2f..%.2f: range extended to "
                    "%.2f..%.2f", *bounds, *new_bounds)
    kappas = next_log_kappas(short, target, new_bounds, n_probes)
    return decision_table(_probes([10.0**k for k in kappas]), new_bounds, window)


def stage_bounds(stage: str, search: dict, arhmm_kappa: float | None = None) -> tuple[float, float]:
    """log10 kappa range of a stage's search."""
    if stage == "arhmm":
        lo, hi = search["arhmm_log10_kappa"]
    else:
        offset_lo, offset_hi = search["full_model_log10_kappa_offset"]
        centre = math.log10(arhmm_kappa)
        lo, hi = centre + offset_lo, centre + offset_hi
    if not lo < hi:
        raise ValueError(f"{stage} kappa search range must increase, got {lo}..{hi} (log10)")
    return float(lo), float(hi)


def read_probes(paths) -> pd.DataFrame:
    probes = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    return with_sources(probes)


def with_sources(history: pd.DataFrame) -> pd.DataFrame:
    """Probe tables written before probes could be continued: every probe was fresh."""
    return _fresh_by_default(history.copy(), ("source_round", "source_probe"))


def _fresh_by_default(table: pd.DataFrame, columns) -> pd.DataFrame:
    """Missing probe columns mean a fresh probe of the search's length (NO_SOURCE)."""
    for column in columns:
        if column not in table:
            table[column] = NO_SOURCE
    return table


def probe_plan(decision: pd.DataFrame, probe: int, probe_iters: int) -> tuple[float, int, tuple[int, int] | None]:
    """A probe's kappa, iterations and the (round, probe) it continues (None: fresh)."""
    row = decision.loc[decision["probe"] == probe].iloc[0]
    iterations = int(row["iterations"]) if int(row["iterations"]) > 0 else probe_iters
    source = None
    if int(row["source_round"]) >= 0:
        source = (int(row["source_round"]), int(row["source_probe"]))
    return float(row["kappa"]), iterations, source


def drift_factor(history: pd.DataFrame, stage_iters: int) -> float | None:
    """Geometric mean of full-length / probe duration over the probes that were continued
    to ``stage_iters`` (None before any was)."""
    history = with_sources(history)
    full = history[(history["iterations"] >= stage_iters) & (history["source_round"] >= 0)]
    ratios = []
    for row in full.itertuples():
        source = history[(history["round"] == row.source_round) & (history["probe"] == row.source_probe)]
        if len(source):
            ratios.append(row.median_duration_frames / max(float(source["median_duration_frames"].iloc[0]), 1e-9))
    if not ratios:
        return None
    return float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-9)))))


def trace_table(probes: pd.DataFrame, chosen_round: int, chosen_probe: int) -> pd.DataFrame:
    """Every probe of a stage, in order, with the chosen one marked."""
    trace = probes.sort_values(["round", "probe"]).reset_index(drop=True)
    trace["chosen"] = (trace["round"] == chosen_round) & (trace["probe"] == chosen_probe)
    return trace


def plot_trace(trace: pd.DataFrame, target_ms, title: str):
    """Median duration (ms) against kappa, with the target band and the chosen probe."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.axhspan(*sorted(target_ms), color="tab:green", alpha=0.2, label="target window")
    for round_, group in trace.groupby("round"):
        ax.plot(group["kappa"], group["median_duration_ms"], "o", label=f"round {round_}")
    chosen = trace[trace["chosen"]]
    ax.plot(chosen["kappa"], chosen["median_duration_ms"], "o", ms=14, mfc="none",
            mec="k", mew=2, label="chosen")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("kappa")
    ax.set_ylabel("median syllable duration (ms)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
