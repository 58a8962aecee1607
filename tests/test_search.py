"""The kappa-search planner (kpms_flow.search) on synthetic duration-vs-kappa curves.

No model is fitted: a "curve" maps log10 kappa to the median syllable duration (frames) a
probe fit would report, and :func:`simulate` runs a whole search the way the workflow does
(round 0's decision from ``first_round``, then ``decide`` after every round of probes),
with optional seeded multiplicative noise on every probe.

The bounds asserted on rounds were measured on this planner (see the numbers beside them)
and are tight enough that a planner repeating its first grid, or spreading its probes over
the whole range again, fails them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kpms_flow.search import (
    PROBE_COLUMNS,
    Window,
    decide,
    drift_factor,
    probe_plan,
    first_round,
    initial_log_kappas,
    isotonic,
    next_log_kappas,
    predict_log_kappa,
    read_decision,
    stage_bounds,
    trace_table,
    window_in_frames,
)

BOUNDS = (3.0, 18.0)  # the config's default arhmm_log10_kappa
WINDOW = window_in_frames((300, 400), 30.0)  # 9-12 frames
N_PROBES = 4
MAX_ROUNDS = 4


# ---------------------------------------------------------------- synthetic curves
def log_linear(cross: float, slope: float):
    """log duration rises ``slope`` (natural log) per decade; the window's centre at ``cross``."""
    return lambda x: WINDOW.centre * math.exp(slope * (x - cross))


def sigmoid(cross: float, steepness: float, low: float = 1.0, high: float = 200.0):
    """Logistic log duration from ``low`` to ``high`` frames, through the window's centre at
    ``cross`` (durations saturate at both ends, as real fits do)."""
    span = math.log(high / low)
    frac = math.log(WINDOW.centre / low) / span
    mid = cross + math.log(1 / frac - 1) / steepness

    def curve(x):
        return low * math.exp(span / (1 + math.exp(-steepness * (x - mid))))

    return curve


def flat_then_rising(start: float, slope: float, level: float = 2.0):
    """Constant ``level`` frames (exactly: medians of integer durations tie) up to ``start``."""
    return lambda x: level if x < start else level * math.exp(slope * (x - start))


def crossing(curve, lo=BOUNDS[0] - 5, hi=BOUNDS[1] + 5) -> float:
    """log10 kappa where a monotone curve meets the window's centre (bisection)."""
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if curve(mid) < WINDOW.centre else (lo, mid)
    return (lo + hi) / 2


# ---------------------------------------------------------------- whole searches


def probe_row(round_, probe, kappa, duration) -> dict:
    return {
        "stage": "arhmm",
        "round": round_,
        "probe": probe,
        "kappa": kappa,
        "log10_kappa": math.log10(kappa),
        "median_duration_frames": duration,
        "median_duration_ms": 1000.0 * duration / 30.0,
        "syllables": 10,
        "iterations": 25,
    }


def simulate(curve, window=WINDOW, bounds=BOUNDS, n_probes=N_PROBES, max_rounds=MAX_ROUNDS,
             noise=0.0, seed=0, limits=(-3.0, 20.0)):
    """Run a search to its end; returns (rounds, final decision row, probes, decisions)."""
    rng = np.random.default_rng(seed)
    decision = first_round(bounds, window, n_probes)
    decisions = [decision]
    rows = []
    for round_ in range(1, max_rounds + 1):
        assert (decision["status"] == "continue").all()
        for probe in decision.itertuples():
            duration = curve(math.log10(probe.kappa))
            if noise:
                duration *= math.exp(rng.normal(0.0, noise))
            rows.append(probe_row(round_, probe.probe, probe.kappa, duration))
        history = pd.DataFrame(rows, columns=PROBE_COLUMNS)
        # As the search_round rule does: the range comes from the previous decision.
        carried = (float(decision["log10_lower"].iloc[0]), float(decision["log10_upper"].iloc[0]))
        decision = decide(history, window, round_, max_rounds, carried, n_probes, limits)
        decisions.append(decision)
        if decision["status"].iloc[0] != "continue":
            return round_, decision.iloc[0], history, decisions
    raise AssertionError(f"decide() still says continue after max_rounds={max_rounds}")


def chosen_probe(history, final) -> pd.Series:
    match = history[(history["round"] == final["chosen_round"])
                    & (history["probe"] == final["chosen_probe"])]
    assert len(match) == 1
    return match.iloc[0]


def check_search(rounds, final, history, decisions, window=WINDOW, bounds=BOUNDS,
                 n_probes=N_PROBES, limits=(-3.0, 20.0)):
    """Invariants of every search, whatever the curve."""
    previous = bounds
    for decision in decisions:
        # Every decision carries the stage's range (possibly extended past an edge, never
        # shrunk, never beyond the hard limits) and window on to the next round.
        carried = (decision["log10_lower"].iloc[0], decision["log10_upper"].iloc[0])
        assert (decision["log10_lower"] == carried[0]).all()
        assert (decision["log10_upper"] == carried[1]).all()
        assert limits[0] <= carried[0] <= previous[0] and previous[1] <= carried[1] <= limits[1]
        previous = carried
        if decision["status"].iloc[0] == "continue":
            assert len(decision) == n_probes
            assert list(decision["probe"]) == list(range(n_probes))
            logs = np.log10(decision["kappa"].to_numpy())
            assert (logs > carried[0]).all() and (logs < carried[1]).all(), logs
        else:
            assert len(decision) == 1
        assert (decision["window_low_frames"] == window.low).all()
        assert (decision["window_high_frames"] == window.high).all()
    assert len(history) == rounds * n_probes
    best = chosen_probe(history, final)
    assert best["kappa"] == final["kappa"]
    durations = history["median_duration_frames"]
    inside = [window.contains(d) for d in durations]
    if final["status"] == "converged":
        assert window.contains(best["median_duration_frames"])
        # The chosen probe is the one nearest the window's geometric centre among those inside.
        nearest = min(window.distance(d) for d, i in zip(durations, inside) if i)
        assert window.distance(best["median_duration_frames"]) == nearest
        # It stops at the first round with a probe inside the window.
        assert not any(inside[: (rounds - 1) * n_probes])
    else:
        assert final["status"] == "exhausted"
        assert rounds == MAX_ROUNDS and not any(inside)
        assert window.distance(best["median_duration_frames"]) == min(
            window.distance(d) for d in durations
        )
    return best


# ---------------------------------------------------------------- window and bounds
def test_window_in_frames_at_30_fps():
    window = window_in_frames((300, 400), 30)
    assert (window.low, window.high) == pytest.approx((9.0, 12.0))
    assert window.centre == pytest.approx(math.sqrt(9 * 12))
    # The order of the configured pair does not matter.
    assert window_in_frames([400, 300], 30.0) == window
    assert window_in_frames((300, 400), 60).low == pytest.approx(18.0)


@pytest.mark.parametrize("fps", [None, float("nan"), 0, -30.0, float("inf")])
def test_window_in_frames_needs_a_frame_rate(fps):
    with pytest.raises(ValueError) as error:
        window_in_frames((300, 400), fps)
    message = str(error.value)
    assert "target_duration_ms" in message and "fps" in message and "frame rate" in message


def test_window_contains_and_distance():
    window = Window(9.0, 12.0)
    assert window.contains(9.0) and window.contains(12.0) and window.contains(10.0)
    assert not window.contains(8.99) and not window.contains(12.01)
    assert window.distance(window.centre) == pytest.approx(0.0)
    # Log distance: twice and half the centre are equally far.
    assert window.distance(2 * window.centre) == pytest.approx(window.distance(window.centre / 2))
    assert math.isfinite(window.distance(0.0))


def test_stage_bounds():
    search = {"arhmm_log10_kappa": [3, 18], "full_model_log10_kappa_offset": [-4.5, 0]}
    assert stage_bounds("arhmm", search) == (3.0, 18.0)
    # The full model's range is relative to the AR-HMM's chosen kappa.
    assert stage_bounds("full_model", search, arhmm_kappa=1e6) == pytest.approx((1.5, 6.0))
    assert stage_bounds("full_model", search, arhmm_kappa=3.2e9) == pytest.approx(
        (math.log10(3.2e9) - 4.5, math.log10(3.2e9))
    )
    with pytest.raises(ValueError, match="arhmm kappa search range must increase"):
        stage_bounds("arhmm", {"arhmm_log10_kappa": [18, 3]})
    with pytest.raises(ValueError, match="full_model kappa search range must increase"):
        stage_bounds("full_model", {"full_model_log10_kappa_offset": [0, 0]}, arhmm_kappa=1e6)


def test_initial_log_kappas_spread_evenly_inside_the_range():
    assert initial_log_kappas(BOUNDS, 4) == pytest.approx([4.875, 8.625, 12.375, 16.125])
    for n in range(1, 8):
        grid = np.array(initial_log_kappas((1.5, 6.0), n))
        assert len(grid) == n
        assert (grid > 1.5).all() and (grid < 6.0).all()
        if n > 1:
            assert np.allclose(np.diff(grid), 4.5 / n)
    with pytest.raises(ValueError, match="must increase"):
        initial_log_kappas((5, 5), 4)


def test_first_round_and_read_decision_round_trip(tmp_path):
    decision = first_round(BOUNDS, WINDOW, 4)
    assert list(decision["status"]) == ["continue"] * 4
    assert np.log10(decision["kappa"]).tolist() == pytest.approx(initial_log_kappas(BOUNDS, 4))
    path = tmp_path / "decision.tsv"
    decision.to_csv(path, sep="\t", index=False)
    table, bounds, window = read_decision(path)
    assert bounds == BOUNDS
    assert window == WINDOW
    assert table["kappa"].tolist() == pytest.approx(decision["kappa"].tolist())


# ---------------------------------------------------------------- isotonic fit
def test_isotonic_properties():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(1)
    for n in [1, 2, 5, 13, 40]:
        for _ in range(20):
            y = np.cumsum(rng.normal(0.2, 1.0, n))  # a trend with violations
            fit = isotonic(y)
            assert fit.shape == y.shape
            assert (np.diff(fit) >= -1e-12).all()  # non-decreasing
            assert fit.sum() == pytest.approx(y.sum())  # pooling keeps block means
            assert np.allclose(isotonic(fit), fit)  # idempotent
            # The least-squares non-decreasing fit: the same as sklearn's.
            reference = IsotonicRegression().fit_transform(np.arange(n), y)
            assert np.allclose(fit, reference)
    assert isotonic(np.array([1.0, 2.0, 2.0, 5.0])).tolist() == [1.0, 2.0, 2.0, 5.0]
    assert isotonic(np.array([3.0, 1.0])).tolist() == [2.0, 2.0]
    assert isotonic(np.array([1.0, 4.0, 2.0, 3.0, 6.0])).tolist() == [1.0, 3.0, 3.0, 3.0, 6.0]


def test_predict_log_kappa_is_exact_on_a_log_linear_curve():
    curve = log_linear(cross=9.3, slope=0.7)
    x = [4.875, 8.625, 12.375, 16.125]
    prediction, lower, upper = predict_log_kappa(x, [curve(v) for v in x], WINDOW.centre)
    assert prediction == pytest.approx(9.3)
    assert (lower, upper) == (8.625, 12.375)
    # Probe order does not matter.
    shuffled = [x[2], x[0], x[3], x[1]]
    assert predict_log_kappa(shuffled, [curve(v) for v in shuffled], WINDOW.centre) == (
        pytest.approx(prediction), lower, upper
    )


def test_predict_log_kappa_beyond_the_probes():
    x = [5.0, 10.0, 15.0]
    prediction, lower, upper = predict_log_kappa(x, [20.0, 30.0, 40.0], WINDOW.centre)
    assert (prediction, lower, upper) == (5.0, -math.inf, 5.0)  # too long already: go lower
    prediction, lower, upper = predict_log_kappa(x, [1.0, 2.0, 3.0], WINDOW.centre)
    assert (prediction, lower, upper) == (15.0, 15.0, math.inf)  # too short still: go higher


def test_predict_log_kappa_on_non_monotone_points():
    # A noisy dip (40 frames at 10, 6 at 12): the isotonic fit pools them; the bracket
    # holds the crossing and the prediction lies inside it.
    x = [4.0, 8.0, 10.0, 12.0, 16.0]
    durations = [2.0, 5.0, 40.0, 6.0, 200.0]
    prediction, lower, upper = predict_log_kappa(x, durations, WINDOW.centre)
    assert lower <= prediction <= upper
    assert lower <= 8.0 and upper >= 10.0


# ---------------------------------------------------------------- next rounds
def random_history(rng, n):
    x = rng.uniform(*BOUNDS, n)
    # Monotone trend plus heavy noise, sometimes all above or all below the window.
    shift = rng.choice([-8.0, 0.0, 8.0])
    d = np.exp(0.6 * (x - rng.uniform(*BOUNDS)) + shift + rng.normal(0, 0.8, n)) * WINDOW.centre
    return pd.DataFrame({"log10_kappa": x, "median_duration_frames": d})


@pytest.mark.parametrize("n_probes", [1, 2, 3, 4, 6])
def test_next_log_kappas_count_and_bounds(n_probes):
    rng = np.random.default_rng(n_probes)
    for _ in range(300):
        history = random_history(rng, int(rng.integers(1, 12)))
        kappas = next_log_kappas(history, WINDOW, BOUNDS, n_probes)
        assert len(kappas) == n_probes
        assert all(BOUNDS[0] < k < BOUNDS[1] for k in kappas), kappas
        assert len(set(np.round(kappas, 9))) == n_probes  # no probe fitted twice in a round
        assert kappas == sorted(kappas)


def test_decide_converged_picks_the_probe_nearest_the_centre():
    rows = [probe_row(1, i, 10.0**k, d) for i, (k, d) in
            enumerate([(5, 3.0), (8, 9.5), (11, 10.5), (14, 50.0)])]
    history = pd.DataFrame(rows)
    decision = decide(history, WINDOW, 1, MAX_ROUNDS, BOUNDS, N_PROBES)
    assert len(decision) == 1
    final = decision.iloc[0]
    assert final["status"] == "converged"
    assert (final["chosen_round"], final["chosen_probe"]) == (1, 2)  # 10.5 is nearer 10.39
    assert final["kappa"] == 1e11


def test_decide_exhausted_picks_the_nearest_probe():
    rows = [probe_row(r, i, 10.0**k, d) for r, i, k, d in
            [(1, 0, 5, 3.0), (1, 1, 10, 30.0), (2, 0, 6, 5.0), (2, 1, 8, 8.5)]]
    decision = decide(pd.DataFrame(rows), WINDOW, 2, 2, BOUNDS, 2)
    final = decision.iloc[0]
    assert final["status"] == "exhausted"
    assert (final["chosen_round"], final["chosen_probe"]) == (2, 1)
    # Before the last round the same history asks for more probes.
    decision = decide(pd.DataFrame(rows), WINDOW, 1, 2, BOUNDS, 2)
    assert list(decision["status"]) == ["continue", "continue"]
    assert all(8 <= math.log10(k) <= 10 for k in decision["kappa"])


def test_search_outcome_reads_each_kind_of_decision_file(tmp_path):
    """The one reader of decision files serves the workflow's input functions and scripts."""
    from kpms_flow.search import search_outcome

    rows = [probe_row(1, 0, 1e5, 3.0), probe_row(1, 1, 1e8, 9.5)]
    cases = {
        "continue": first_round(BOUNDS, WINDOW, 4),
        "converged": decide(pd.DataFrame(rows), WINDOW, 1, MAX_ROUNDS, BOUNDS, N_PROBES),
        "exhausted": decide(pd.DataFrame(rows[:1]), WINDOW, 2, 2, BOUNDS, 2),
    }
    for status, table in cases.items():
        path = tmp_path / f"{status}.tsv"
        table.to_csv(path, sep="\t", index=False)
        outcome = search_outcome(path)
        assert outcome.status == status
        assert outcome.finished == (status != "continue")
    assert (search_outcome(tmp_path / "converged.tsv").chosen_round,
            search_outcome(tmp_path / "converged.tsv").chosen_probe) == (1, 1)
    assert search_outcome(tmp_path / "exhausted.tsv").chosen_probe == 0


# ---------------------------------------------------------------- whole searches
@pytest.mark.parametrize("cross", [1.0, 2.0, 19.0])
def test_a_target_beyond_the_range_extends_it_instead_of_exhausting(cross):
    """The data put the target outside the configured 3..18: later rounds search past the
    edge (up to the hard limits) and converge, rather than spending rounds at the edge."""
    rounds, final, history, decisions = simulate(log_linear(cross, 0.5))
    assert final["status"] == "converged", (cross, history)
    assert abs(chosen_probe(history, final)["log10_kappa"] - cross) < 0.5
    lowers = [d["log10_lower"].iloc[0] for d in decisions]
    uppers = [d["log10_upper"].iloc[0] for d in decisions]
    assert min(lowers) >= -3 and max(uppers) <= 20
    assert (min(lowers) < BOUNDS[0]) == (cross < BOUNDS[0])
    assert (max(uppers) > BOUNDS[1]) == (cross > BOUNDS[1])


def test_the_range_never_extends_past_the_hard_limits():
    rounds, final, history, decisions = simulate(log_linear(-6.0, 0.5))
    assert final["status"] == "exhausted"
    assert min(d["log10_lower"].iloc[0] for d in decisions) == -3
    assert history["log10_kappa"].min() > -3
    # The closest probe is the one nearest the unreachable target: the lowest kappa tried.
    assert chosen_probe(history, final)["log10_kappa"] == history["log10_kappa"].min()


def test_extended_bounds_moves_only_the_edge_the_target_lies_beyond():
    from kpms_flow.search import extended_bounds

    far = pd.DataFrame([probe_row(1, 0, 1e8, 20.0), probe_row(1, 1, 1e12, 40.0)])
    assert extended_bounds(far, WINDOW, BOUNDS) == BOUNDS  # probes far from the edge
    near = pd.DataFrame([probe_row(1, 0, 10**3.5, 20.0), probe_row(1, 1, 1e6, 40.0)])
    lo, hi = extended_bounds(near, WINDOW, BOUNDS)
    assert hi == BOUNDS[1] and -3 <= lo < BOUNDS[0]
    inside = pd.DataFrame([probe_row(1, 0, 10**3.5, 5.0), probe_row(1, 1, 1e6, 40.0)])
    assert extended_bounds(inside, WINDOW, BOUNDS) == BOUNDS  # the target is bracketed


# Crossings near 3, in the middle and near 18 (log10 kappa).
CROSSINGS = [3.4, 4.0, 5.5, 7.0, 8.2, 9.3, 10.5, 12.0, 13.7, 15.0, 16.4, 17.6]


@pytest.mark.parametrize("slope", [0.25, 0.5, 1.0])
def test_log_linear_curves_converge_within_three_rounds(slope):
    rounds = []
    for cross in CROSSINGS:
        result = simulate(log_linear(cross, slope))
        best = check_search(*result)
        assert result[1]["status"] == "converged", (cross, slope)
        assert result[0] <= 3, (cross, slope, result[2])
        # Converged: the chosen kappa is within the window's kappa span of the crossing.
        span = math.log(WINDOW.high / WINDOW.low) / slope
        assert abs(best["log10_kappa"] - cross) <= span / 2 + 1e-9
        rounds.append(result[0])
    # Measured: mean 1.75, 2.17 and 2.42 rounds for slopes 0.25, 0.5 and 1 (12 crossings).
    # A planner that repeated the first grid would be exhausted (4 rounds) on all of them.
    assert np.mean(rounds) <= {0.25: 1.85, 0.5: 2.25, 1.0: 2.5}[slope]


@pytest.mark.parametrize("steepness", [0.5, 1.0])
def test_saturating_curves_converge_within_three_rounds(steepness):
    # Logistic log duration, 1 to 200 frames: flat at both ends, steepest in between
    # (steepness 1: up to 1.3 natural-log units per decade, the window only 0.22 decades wide).
    rounds = []
    for cross in CROSSINGS:
        curve = sigmoid(cross, steepness)
        assert crossing(curve) == pytest.approx(cross, abs=1e-6)
        result = simulate(curve)
        check_search(*result)
        assert result[1]["status"] == "converged", (cross, steepness)
        assert result[0] <= 3, (cross, steepness, result[2])
        rounds.append(result[0])
    # Measured: mean 2.33 (steepness 0.5) and 2.5 (1.0).
    assert np.mean(rounds) <= {0.5: 2.4, 1.0: 2.6}[steepness]


def test_steep_curves_still_converge_within_max_rounds():
    # Steepness 2: the window is 0.1 decades wide; the planner needs up to 4 rounds.
    for cross in CROSSINGS:
        result = simulate(sigmoid(cross, 2.0))
        check_search(*result)
        assert result[1]["status"] == "converged", cross


@pytest.mark.parametrize("noise", [0.1, 0.2])
def test_noisy_curves(noise):
    """Multiplicative log-normal noise on every probe (seeded): non-monotone points."""
    results = []
    for cross in CROSSINGS:
        for seed in range(3):
            result = simulate(log_linear(cross, 0.6), noise=noise, seed=seed)
            check_search(*result)
            results.append(result)
    rounds = np.array([r[0] for r in results])
    converged = np.mean([r[1]["status"] == "converged" for r in results])
    # Measured (36 searches each): noise 0.1: all converge, mean 2.22 rounds, at most 4 (one
    # search: noise put every probe above the target near the lower edge, so the range was
    # extended below 3, which cost a round; 2.19 and at most 3 without range extension);
    # noise 0.2: all converge, mean 2.42 rounds, at most 3.
    assert converged == 1.0
    assert rounds.max() <= 4
    assert (rounds == 4).sum() <= 1
    assert rounds.mean() <= 2.5


@pytest.mark.parametrize("start", [8.0, 10.0, 13.0, 15.0])
@pytest.mark.parametrize("slope", [1.0, 2.0])
def test_flat_region_then_crossing(start, slope):
    """Durations tie at 2 frames over several decades, then rise through the window.

    Probes in the flat stretch say the crossing lies beyond its last point; the next round
    must neither probe the flat stretch again nor repeat a kappa already fitted.
    """
    curve = flat_then_rising(start, slope)
    cross = crossing(curve)
    rounds, final, history, decisions = simulate(curve)
    check_search(rounds, final, history, decisions)
    assert final["status"] == "converged", history
    # Measured: 2 or 3 rounds at slope 1; 3 or 4 at slope 2 (the window 0.14 decades wide).
    assert rounds <= {1.0: 3, 2.0: 4}[slope], history
    assert not history["log10_kappa"].round(9).duplicated().any(), history
    for round_ in range(2, rounds + 1):
        earlier = history[history["round"] < round_]
        flat_known = earlier.loc[earlier["median_duration_frames"] < WINDOW.low, "log10_kappa"]
        probes = history.loc[history["round"] == round_, "log10_kappa"]
        assert (probes > flat_known.max()).all(), history
    assert abs(chosen_probe(history, final)["log10_kappa"] - cross) < 0.5


def test_beyond_the_upper_hard_limit_each_round_moves_right_then_exhausts():
    """Durations below the window even at the hard limit: exhausted after max_rounds, each
    round's probes beyond every earlier one, the closest probe (largest kappa) chosen."""
    rounds, final, history, decisions = simulate(log_linear(cross=24.0, slope=0.5))
    best = check_search(rounds, final, history, decisions)
    assert final["status"] == "exhausted" and rounds == MAX_ROUNDS
    lowest = history.groupby("round")["log10_kappa"].min()
    highest = history.groupby("round")["log10_kappa"].max()
    for r in range(2, MAX_ROUNDS + 1):
        assert lowest[r] > highest[r - 1]
    assert best["log10_kappa"] == history["log10_kappa"].max()
    assert max(d["log10_upper"].iloc[0] for d in decisions) == 20


def test_the_full_model_stage_searches_below_the_arhmm_kappa():
    search = {"arhmm_log10_kappa": [3, 18], "full_model_log10_kappa_offset": [-4.5, 0]}
    bounds = stage_bounds("full_model", search, arhmm_kappa=10.0**9.3)
    # search_round never extends the full model's range above its upper edge.
    limits = (-3.0, bounds[1])
    for cross in [5.2, 6.6, 7.9, 9.0]:
        result = simulate(log_linear(cross, 0.6), bounds=bounds, limits=limits)
        check_search(*result, bounds=bounds, limits=limits)
        assert result[1]["status"] == "converged" and result[0] <= 3


@pytest.mark.parametrize("n_probes", [1, 2, 3, 6])
def test_other_probe_counts(n_probes):
    max_rounds = {1: 12, 2: 6, 3: 4, 6: 3}[n_probes]
    for cross in [3.6, 9.3, 17.2]:
        rounds, final, history, decisions = simulate(
            log_linear(cross, 0.6), n_probes=n_probes, max_rounds=max_rounds
        )
        for decision in decisions:
            if decision["status"].iloc[0] == "continue":
                assert len(decision) == n_probes
        assert final["status"] == "converged", (n_probes, cross, history)
        assert len(history) == rounds * n_probes


def test_more_probes_need_fewer_rounds():
    def mean_rounds(n):
        return np.mean([simulate(log_linear(c, 0.6), n_probes=n, max_rounds=12)[0]
                        for c in CROSSINGS])

    assert mean_rounds(8) <= mean_rounds(4) <= mean_rounds(2)


# ---------------------------------------------------------------- trace
def test_trace_table_marks_the_chosen_probe():
    rounds, final, history, _ = simulate(log_linear(9.3, 0.6))
    trace = trace_table(history.sample(frac=1, random_state=0), final["chosen_round"],
                        final["chosen_probe"])
    assert trace["chosen"].sum() == 1
    assert trace[["round", "probe"]].values.tolist() == sorted(
        trace[["round", "probe"]].values.tolist()
    )
    assert trace.loc[trace["chosen"], "kappa"].iloc[0] == final["kappa"]


# ---------------------------------------------------------------- drift and confirmation
PROBE_ITERS, STAGE_ITERS = 25, 200  # the defaults: probes, and the full model's length


def simulate_drift(curve, drift: float, confirm_probes=2, max_rounds=6, noise=0.0, seed=0,
                   limits=(-3.0, 20.0), bounds=BOUNDS):
    """A search whose full-length fits' durations are the probe curve's times ``drift``, as
    the workflow runs it: each decision row gives a probe's kappa, iterations and the probe
    it continues. Returns (rounds, final decision row, probes, iterations fitted)."""
    rng = np.random.default_rng(seed)
    decision = first_round(bounds, WINDOW, N_PROBES)
    rows, fitted = [], 0
    for round_ in range(1, max_rounds + 1):
        for probe in decision.itertuples():
            iterations = probe.iterations if probe.iterations > 0 else PROBE_ITERS
            duration = curve(math.log10(probe.kappa))
            if iterations >= STAGE_ITERS:
                duration *= drift
            if noise:
                duration *= math.exp(rng.normal(0.0, noise))
            continued = probe.source_round >= 0
            fitted += iterations - (PROBE_ITERS if continued else 0)
            rows.append(dict(probe_row(round_, probe.probe, probe.kappa, duration),
                             iterations=iterations, source_round=probe.source_round,
                             source_probe=probe.source_probe))
        history = pd.DataFrame(rows, columns=PROBE_COLUMNS)
        carried = (float(decision["log10_lower"].iloc[0]), float(decision["log10_upper"].iloc[0]))
        decision = decide(history, WINDOW, round_, max_rounds, carried, N_PROBES, limits,
                          stage_iters=STAGE_ITERS, confirm_probes=confirm_probes)
        if decision["status"].iloc[0] != "continue":
            return round_, decision.iloc[0], history, fitted
    raise AssertionError("decide() still says continue after max_rounds")


def test_without_confirmation_a_drifting_fit_leaves_the_window_with_the_probe_inside():
    """The failure issue 14 reports, reproduced on the planner: the probe converges inside
    the window, its full-length fit (x1.5) does not."""
    curve = log_linear(8.0, 0.6)
    _, final, history = simulate(curve)[:3]
    probe = chosen_probe(history, final)
    assert final["status"] == "converged" and WINDOW.contains(probe["median_duration_frames"])
    assert not WINDOW.contains(1.5 * probe["median_duration_frames"])


@pytest.mark.parametrize("drift", [0.6, 0.8, 1.0, 1.27, 1.5, 2.0])
@pytest.mark.parametrize("cross", [4.0, 8.0, 13.0])
def test_confirmed_search_delivers_a_full_length_fit_inside_the_window(drift, cross):
    rounds, final, history, fitted = simulate_drift(log_linear(cross, 0.6), drift)
    chosen = chosen_probe(history, final)
    assert final["status"] == "converged"
    assert chosen["iterations"] == STAGE_ITERS
    assert WINDOW.contains(chosen["median_duration_frames"])
    # Measured on this planner (18 cases): 3-4 rounds without drift (probes, then one
    # confirmation), at most 5 with it; at most 1,050 iterations fitted, the delivered fit
    # included, against 1,200 for the documented scan (5 kappas x 200 full-model
    # iterations) and the final fit that follows it.
    assert rounds <= (4 if drift == 1.0 else 5), rounds
    assert fitted <= 1050, fitted


def test_a_drift_measured_once_retargets_the_short_probes():
    """After continued probes miss by x1.5, the next full-length kappas come from the short
    probes' curve at window / 1.5: one more round lands inside."""
    rounds, final, history, _ = simulate_drift(log_linear(8.0, 0.6), 1.5)
    full = history[history["iterations"] == STAGE_ITERS]
    first_full_round = int(full["round"].min())
    assert not any(WINDOW.contains(v) for v in full[full["round"] == first_full_round]["median_duration_frames"])
    assert rounds == first_full_round + 1


def test_noisy_drifting_searches_land_inside_where_probes_alone_never_do():
    # Probe medians at 25 iterations are noisy (benchmarks/README.md: +-30 % on openfield).
    landed = probes_alone = 0
    for seed in range(20):
        _, final, history, _ = simulate_drift(log_linear(8.0, 0.6), 1.3, noise=0.1, seed=seed)
        chosen = chosen_probe(history, final)
        assert chosen["iterations"] == STAGE_ITERS  # never a short probe when a full one exists
        landed += final["status"] == "converged"
        _, final, history = simulate(log_linear(8.0, 0.6), noise=0.1, seed=seed)[:3]
        probes_alone += WINDOW.contains(1.3 * chosen_probe(history, final)["median_duration_frames"])
    assert landed >= 18, landed  # measured: 20 of 20
    assert probes_alone <= 2, probes_alone  # measured: 0 of 20


def test_a_window_out_of_reach_is_exhausted_on_the_closest_full_length_fit():
    # Durations stay below the window at the hard limit, even after drift.
    rounds, final, history, _ = simulate_drift(lambda x: 2.0 + 0.1 * x, 1.2, limits=(-3.0, 20.0))
    assert final["status"] == "exhausted" and rounds == 6
    full = history[history["iterations"] == STAGE_ITERS]
    if len(full):
        assert chosen_probe(history, final)["iterations"] == STAGE_ITERS


def test_probes_as_long_as_the_stage_need_no_confirmation():
    decision = first_round(BOUNDS, WINDOW, 2)
    rows = [dict(probe_row(1, p.probe, p.kappa, WINDOW.centre), iterations=STAGE_ITERS)
            for p in decision.itertuples()]
    out = decide(pd.DataFrame(rows), WINDOW, 1, 4, BOUNDS, 2, stage_iters=STAGE_ITERS,
                 confirm_probes=2)
    assert out["status"].iloc[0] == "converged"


def test_decisions_and_probes_written_before_continuation_still_read(tmp_path):
    old = first_round(BOUNDS, WINDOW, 2).drop(columns=["iterations", "source_round", "source_probe"])
    path = tmp_path / "decision.tsv"
    old.to_csv(path, sep="\t", index=False)
    table, _, _ = read_decision(path)
    kappa, iterations, source = probe_plan(table, 1, PROBE_ITERS)
    assert (kappa, iterations, source) == (pytest.approx(table["kappa"].iloc[1]), PROBE_ITERS, None)
    assert drift_factor(pd.DataFrame([probe_row(1, 0, 1e5, 3.0)]), STAGE_ITERS) is None


def test_drift_factor_pairs_each_continued_fit_with_its_probe():
    rows = [probe_row(1, 0, 1e5, 10.0), probe_row(1, 1, 1e6, 20.0),
            dict(probe_row(2, 0, 1e5, 15.0), iterations=STAGE_ITERS, source_round=1, source_probe=0),
            dict(probe_row(2, 1, 1e6, 20.0), iterations=STAGE_ITERS, source_round=1, source_probe=1)]
    assert drift_factor(pd.DataFrame(rows), STAGE_ITERS) == pytest.approx(math.sqrt(1.5))
