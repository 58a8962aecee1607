"""The run summary states the delivered model's durations against the target window."""

from kpms_flow.summary import duration_checks, format_summary

BASE = {
    "training_sessions": 4, "applied_sessions": 1, "excluded_sessions": 0, "frames": 7200,
    "fps": 30.0, "latent_dim": 4, "variance_explained": 0.9, "kappa_arhmm": 1e4,
    "kappa_full_model": 1e3, "median_duration_frames": 15.0, "median_duration_ms": 500.0,
    "syllables_used": 9, "syllables_over_0.005": 8, "most_frequent_syllable": 0,
}
PROBES = {
    "arhmm": {"status": "converged", "median_duration_ms": 333.0, "iterations": 25},
    "full_model": {"status": "converged", "median_duration_ms": 400.0, "iterations": 25},
}
FITS = {
    "arhmm": {"median_duration_ms": 350.0, "iterations": 50},
    "full_model": {"median_duration_ms": 500.0, "iterations": 200},
}


def test_a_converged_probe_whose_final_fit_drifted_out_is_not_reported_converged():
    summary = dict(BASE, search_arhmm="converged in 2 rounds, 8 probe fits",
                   search_full_model="converged in 1 rounds, 4 probe fits")
    summary.update(duration_checks(summary, [300, 400], FITS, PROBES))
    assert summary["final_in_window_arhmm"] is True
    assert summary["search_status_arhmm"] == "converged"
    assert summary["final_in_window_full_model"] is False
    assert summary["search_status_full_model"] == "drifted"
    assert summary["in_target_window"] is False
    text = format_summary(summary)
    assert "median duration: final fit 350 ms after 50 iterations, chosen probe 333 ms after 25: inside the target 300-400 ms" in text
    assert "final fit 500 ms after 200 iterations, chosen probe 400 ms after 25: OUTSIDE the target 300-400 ms" in text
    assert "= 500 ms at 30 fps, OUTSIDE the target 300-400 ms" in text
    assert "WARNING: the full model search's probe was inside the target 300-400 ms, but the final fit's median duration (500 ms) is not" in text


def test_an_exhausted_search_is_a_warning_nobody_can_miss():
    probes = dict(PROBES, arhmm=dict(PROBES["arhmm"], status="exhausted", median_duration_ms=280.0))
    fits = dict(FITS, full_model={"median_duration_ms": 350.0, "iterations": 200})
    summary = dict(BASE, median_duration_ms=350.0)
    summary.update(duration_checks(summary, [300, 400], fits, probes))
    assert summary["search_status_arhmm"] == "exhausted"
    assert summary["in_target_window"] is True
    text = format_summary(summary)
    assert "WARNING: the AR-HMM kappa search did not reach the target 300-400 ms" in text
    assert ", inside the target 300-400 ms" in text


def test_without_a_search_the_final_fits_are_still_checked():
    summary = dict(BASE)
    summary.update(duration_checks(summary, [300, 400], FITS, None))
    assert "search_status_full_model" not in summary
    assert summary["final_in_window_full_model"] is False
    assert "final fit 500 ms after 200 iterations: OUTSIDE the target" in format_summary(summary)
