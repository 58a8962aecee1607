"""The run summary states the delivered model's durations against the target window."""

import pandas as pd

from kpms_flow.summary import duration_checks, format_summary, selection_checks

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


def test_a_search_confirmed_at_full_length_reports_its_short_probe_and_the_confirmation():
    probes = dict(PROBES, full_model={
        "status": "converged", "median_duration_ms": 366.7, "iterations": 200,
        "short_probe_median_duration_ms": 266.7, "short_probe_iterations": 25})
    fits = dict(FITS, full_model={"median_duration_ms": 366.7, "iterations": 200})
    summary = dict(BASE, median_duration_ms=366.7)
    summary.update(duration_checks(summary, [300, 400], fits, probes))
    assert summary["search_status_full_model"] == "converged"
    assert summary["probe_median_duration_ms_full_model"] == 266.7
    text = format_summary(summary)
    assert ("final fit 367 ms after 200 iterations, chosen probe 267 ms after 25 (confirmed in "
            "the search at 200): inside the target 300-400 ms") in text
    assert "WARNING" not in text


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


def selection_tables(chosen_inside: bool, trending: bool):
    eml = pd.DataFrame({
        "restart": ["restart_0", "restart_1", "restart_2"], "seed": [0, 1, 2],
        "kappa": [1e3, 1e3, 2e3], "eml": [-10.0, -5.0, -7.0], "eml_std_err": [1.0, 0.5, 0.7],
        "median_duration_ms": [350.0, 500.0 if not chosen_inside else 360.0, 380.0],
        "in_target_window": [True, chosen_inside, True], "syllables": [9, 8, 9],
        "chosen": [False, True, False],
    })
    pairwise = pd.DataFrame({"restart_a": ["restart_0", "restart_0", "restart_1"],
                             "restart_b": ["restart_1", "restart_2", "restart_2"],
                             "nmi": [0.5, 0.7, 0.6]})
    stability = pd.DataFrame({"syllable": [0, 1, 2, 3], "reproduced": [True, True, False, True]})
    convergence = pd.DataFrame({"restart": ["restart_0"] * 2 + ["restart_2"] * 2,
                                "iteration": [0, 25] * 2, "log_likelihood": [-9.0, -8.0] * 2,
                                "still_trending": [False, False, trending, trending]})
    return eml, pairwise, stability, convergence


def test_model_selection_is_summarised_with_the_delivered_models_kappa_and_stability():
    summary = dict(BASE, target_duration_ms=[300, 400])
    summary.update(selection_checks(*selection_tables(chosen_inside=True, trending=False), [300, 400]))
    assert summary["selection_chosen"] == "restart_1" and summary["selection_chosen_seed"] == 1
    assert summary["kappa_full_model"] == 1e3
    assert summary["selection_median_pairwise_nmi"] == 0.6
    assert (summary["selection_reproduced_syllables"], summary["selection_frequent_syllables"]) == (3, 4)
    assert summary["selection_window_note"] == ""
    text = format_summary(summary)
    assert "model selection: restart_1 (seed 1) of 3 restarts" in text
    assert "median NMI between restarts 0.60; 3 of the chosen model's 4 frequent syllables" in text
    assert "WARNING" not in text


def test_a_chosen_model_outside_the_window_and_a_rising_fit_are_warnings():
    summary = dict(BASE, target_duration_ms=[300, 400])
    summary.update(selection_checks(*selection_tables(chosen_inside=False, trending=True), [300, 400]))
    assert "restart_0, restart_2 lie(s) inside" in summary["selection_window_note"]
    assert summary["selection_trending_fits"] == "restart_2"
    text = format_summary(summary)
    assert "WARNING: log-likelihood still rising at the end of restart_2" in text
    assert "WARNING: the chosen model (restart_1, highest EML) has a median syllable duration of 500 ms" in text
