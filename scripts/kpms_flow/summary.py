"""The run summary: what a scientist checks first after a fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import nmi, shuffled_nmi
from .results import syllable_runs


def run_summary(
    syllables: dict[str, np.ndarray],
    training_sessions: list[str],
    fps: float | None,
    latent_dim: int,
    kappa: dict[str, float],
    qa: pd.DataFrame,
    ground_truth: dict[str, np.ndarray] | None = None,
    min_frequency: float = 0.005,
    variance_explained: float | None = None,
) -> dict:
    """Median bout duration, syllables used, and NMI against ground truth where known.

    Durations pool the bouts of the training sessions, each session counted separately
    so that bouts never span two sessions.
    """
    runs = np.concatenate([syllable_runs(syllables[s]) for s in training_sessions])
    median_frames = float(np.median(runs))
    pooled = np.concatenate([syllables[s] for s in training_sessions])
    counts = np.bincount(pooled)
    frequencies = counts / counts.sum()
    summary = {
        "training_sessions": len(training_sessions),
        "applied_sessions": len(syllables) - len(training_sessions),
        "excluded_sessions": int((qa["train_requested"] & ~qa["passes_qa"]).sum()),
        # passing QA but left out by the training budget (kpms_flow.qa.budget_exclusions)
        "over_budget_sessions": int(
            (qa["train_requested"] & qa["passes_qa"] & ~qa["used_for_training"]).sum()
        ),
        "frames": int(pooled.size),
        "fps": fps,
        "latent_dim": int(latent_dim),
        "variance_explained": variance_explained,
        "kappa_arhmm": kappa.get("arhmm"),
        "kappa_full_model": kappa.get("full_model"),
        "median_duration_frames": median_frames,
        "median_duration_ms": None if not fps else 1000.0 * median_frames / fps,
        "syllables_used": int((counts > 0).sum()),
        f"syllables_over_{min_frequency:g}": int((frequencies > min_frequency).sum()),
        "most_frequent_syllable": int(np.argmax(counts)),
    }
    if ground_truth:
        common = [s for s in syllables if s in ground_truth]
        true = np.concatenate([ground_truth[s][: len(syllables[s])] for s in common])
        fitted = np.concatenate([syllables[s][: len(ground_truth[s])] for s in common])
        summary["nmi"] = nmi(true, fitted)
        summary["nmi_shuffled"] = shuffled_nmi(true, fitted)
        held_out = [s for s in common if s not in training_sessions]
        if held_out:
            true = np.concatenate([ground_truth[s][: len(syllables[s])] for s in held_out])
            fitted = np.concatenate([syllables[s][: len(ground_truth[s])] for s in held_out])
            summary["nmi_applied_sessions"] = nmi(true, fitted)
    return summary


STAGE_NAMES = {"arhmm": "AR-HMM", "full_model": "full model"}


def duration_checks(
    summary: dict,
    target_ms,
    final_fits: dict[str, dict],
    chosen_probes: dict[str, dict] | None = None,
) -> dict:
    """Each final fit's median duration against the target window, probe vs final.

    Parameters
    ----------
    summary : dict
        :func:`run_summary`'s values (its median duration is the delivered model's,
        measured on the exported syllables).
    target_ms : (float, float)
        The window (config ``kappa_search.target_duration_ms``).
    final_fits : dict
        Stage -> restart 0's final fit's metrics row
        (``results/fits/restart_0/<stage>/metrics.tsv``: the search's continued chain).
    chosen_probes : dict, optional
        Stage -> the search's chosen probe (``results/search/<stage>/chosen.tsv``).

    Returns
    -------
    dict
        Values to add to the summary. A search whose probe reached the window but whose
        final fit drifted out of it is reported as ``drifted``, never as converged.
    """
    low, high = sorted(float(v) for v in target_ms)

    def inside(ms):
        return ms is not None and ms == ms and low <= ms <= high

    values = {"target_duration_ms": [low, high]}
    for stage, fit in final_fits.items():
        final_ms = fit.get("median_duration_ms")
        values[f"final_median_duration_ms_{stage}"] = final_ms
        values[f"final_iterations_{stage}"] = fit.get("iterations")
        values[f"final_in_window_{stage}"] = inside(final_ms)
        probe = (chosen_probes or {}).get(stage)
        if probe is not None:
            # The short probe's duration, also when the search confirmed it at full length.
            values[f"probe_median_duration_ms_{stage}"] = probe.get(
                "short_probe_median_duration_ms", probe.get("median_duration_ms"))
            values[f"probe_iterations_{stage}"] = probe.get(
                "short_probe_iterations", probe.get("iterations"))
            values[f"chosen_fit_iterations_{stage}"] = probe.get("iterations")
            status = str(probe.get("status"))
            if status == "converged" and not inside(final_ms):
                status = "drifted"  # the probe was inside, the model users get is not
            values[f"search_status_{stage}"] = status
    values["in_target_window"] = inside(summary.get("median_duration_ms"))
    return values


def session_details(qa: pd.DataFrame, training_sessions: list[str]) -> list[dict]:
    """Each session's role in the run: trained, applied, and why it did not train."""
    details = []
    for row in qa.to_dict("records"):
        used = row["session"] in training_sessions
        details.append(
            {
                "session": row["session"],
                "frames": int(row["frames"]),
                "used_for_training": used,
                "syllables_from": "fit" if used else "apply_model",
                "exclusion_reason": "" if used else str(row.get("exclusion_reason") or ""),
            }
        )
    return details


def calibration_summary(estimator_path, truth_params_path=None) -> dict:
    """The noise calibration's slope and intercept, and the generator's where known (the
    demo's ground_truth/params.json: error_slope, error_intercept)."""
    import json

    row = pd.read_csv(estimator_path, sep="\t").iloc[0]
    out = {
        "calibration_slope": float(row["slope"]),
        "calibration_intercept": float(row["intercept"]),
        "calibration_annotations": int(row["n_annotations"]),
    }
    if truth_params_path is not None and Path(truth_params_path).exists():
        params = json.loads(Path(truth_params_path).read_text())
        if "error_slope" in params:
            out["true_error_slope"] = float(params["error_slope"])
            out["true_error_intercept"] = float(params["error_intercept"])
    return out


def summary_json(summary: dict, sessions: list[dict]) -> str:
    """The summary and per-session details as JSON (unknown values as null, not NaN)."""
    import json

    def clean(value):
        if isinstance(value, (float, np.floating)):
            return None if not np.isfinite(value) else float(value)
        if isinstance(value, np.integer):
            return int(value)
        return value

    document = {key: clean(value) for key, value in summary.items()}
    document["sessions"] = [{k: clean(v) for k, v in row.items()} for row in sessions]
    return json.dumps(document, indent=1) + "\n"


def variance_at(variance: pd.DataFrame, latent_dim: int) -> float:
    """Cumulative variance explained by the first ``latent_dim`` components."""
    return float(variance.loc[variance["component"] == latent_dim, "cumulative"].iloc[0])


def _number(value, digits=3) -> str:
    return "unknown" if value is None or value != value else f"{value:.{digits}g}"


def selection_checks(
    eml: pd.DataFrame,
    pairwise: pd.DataFrame,
    stability: pd.DataFrame,
    convergence: pd.DataFrame,
    target_ms=None,
) -> dict:
    """The model selection's outcome for the summary (``results/selection/*.tsv``).

    Returns the chosen restart and its EML, the delivered model's kappa, the median
    pairwise NMI between restarts, how many of the chosen model's frequent syllables most
    restarts reproduce, the fits still trending at their end, and a note when the chosen
    model lies outside the target window while another restart is inside it.
    """
    from .selection import window_note

    chosen = eml[eml["chosen"].astype(bool)].iloc[0]
    trending = sorted(
        convergence.loc[convergence["still_trending"].astype(bool), "restart"].unique().tolist()
    )
    return {
        "selection_restarts": int(len(eml)),
        "selection_chosen": str(chosen["restart"]),
        "selection_chosen_seed": int(chosen["seed"]),
        "selection_chosen_eml": float(chosen["eml"]),
        "selection_chosen_eml_std_err": float(chosen["eml_std_err"]),
        "kappa_full_model": float(chosen["kappa"]),
        "selection_median_pairwise_nmi": float(np.median(pairwise["nmi"])),
        "selection_frequent_syllables": int(len(stability)),
        "selection_reproduced_syllables": int(stability["reproduced"].astype(bool).sum()),
        "selection_trending_fits": ", ".join(trending),
        "selection_window_note": window_note(eml, str(chosen["restart"]), target_ms) or "",
    }


def _selection_lines(summary: dict, span: str) -> tuple[list[str], list[str]]:
    if "selection_chosen" not in summary:
        return [], []
    lines = [
        f"  model selection: {summary['selection_chosen']} (seed "
        f"{summary['selection_chosen_seed']}) of {summary['selection_restarts']} restarts, "
        f"highest expected marginal likelihood ({_number(summary['selection_chosen_eml'])} "
        f"+/- {_number(summary['selection_chosen_eml_std_err'])})",
        f"    stability: median NMI between restarts "
        f"{summary['selection_median_pairwise_nmi']:.2f}; "
        f"{summary['selection_reproduced_syllables']} of the chosen model's "
        f"{summary['selection_frequent_syllables']} frequent syllables reproduced in most "
        "restarts",
    ]
    warnings = []
    if summary.get("selection_trending_fits"):
        warnings.append(
            f"  WARNING: log-likelihood still rising at the end of {summary['selection_trending_fits']}"
            " (results/selection/convergence.png): more iterations (full_model.num_iters)"
        )
    if summary.get("selection_window_note"):
        warnings.append(f"  WARNING: {summary['selection_window_note']}")
    return lines, warnings


def format_summary(summary: dict, sessions: list[dict] | None = None) -> str:
    """A short summary for people: what trained, what kappa, what syllables came out."""
    lines = ["kpms-flow run summary"]
    text = (
        f"  sessions: {summary['training_sessions']} trained, "
        f"{summary['applied_sessions']} applied with the frozen model"
    )
    left_out = []
    if summary["excluded_sessions"]:
        left_out.append(f"{summary['excluded_sessions']} excluded by QA")
    if summary.get("over_budget_sessions"):
        left_out.append(f"{summary['over_budget_sessions']} over the training budget")
    if left_out:
        text += f" ({', '.join(left_out)})"
    lines.append(text)
    for session in sessions or []:
        if not session["used_for_training"]:
            lines.append(f"    {session['session']}: not trained ({session['exclusion_reason']})")
    variance = summary.get("variance_explained")
    lines.append(
        f"  latent_dim: {summary['latent_dim']}"
        + ("" if variance is None else f" ({100 * variance:.1f} % of pose variance)")
    )
    window = summary.get("target_duration_ms")
    span = "" if not window else f"{window[0]:g}-{window[1]:g} ms"
    warnings = []
    for stage, name in STAGE_NAMES.items():
        line = f"  kappa {name}: {_number(summary.get(f'kappa_{stage}'))}"
        if summary.get(f"search_{stage}"):
            line += f" (search {summary[f'search_{stage}']})"
        lines.append(line)
        final_ms = summary.get(f"final_median_duration_ms_{stage}")
        if window and f"final_in_window_{stage}" in summary:
            probe_ms = summary.get(f"probe_median_duration_ms_{stage}")
            where = "inside" if summary[f"final_in_window_{stage}"] else "OUTSIDE"
            detail = f"    median duration: final fit {_number(final_ms)} ms"
            if summary.get(f"final_iterations_{stage}") is not None:
                detail += f" after {summary[f'final_iterations_{stage}']} iterations"
            if probe_ms is not None:
                detail += (
                    f", chosen probe {_number(probe_ms)} ms after "
                    f"{summary.get(f'probe_iterations_{stage}')}"
                )
                confirmed = summary.get(f"chosen_fit_iterations_{stage}")
                if confirmed is not None and confirmed != summary.get(f"probe_iterations_{stage}"):
                    detail += f" (confirmed in the search at {confirmed})"
            lines.append(f"{detail}: {where} the target {span}")
        status = summary.get(f"search_status_{stage}")
        if status == "exhausted":
            warnings.append(
                f"  WARNING: the {name} kappa search did not reach the target {span}; the "
                "closest probe was taken (config kappa_search: widen the range or add rounds)"
            )
        elif status == "drifted":
            warnings.append(
                f"  WARNING: the {name} search's probe was inside the target {span}, but the "
                f"final fit's median duration ({_number(final_ms)} ms) is not: durations "
                "drift as a fit continues (config kappa_search.confirm_probes confirms "
                "probes at full length)"
            )
    ms = summary.get("median_duration_ms")
    text = f"  median syllable duration: {summary['median_duration_frames']:g} frames" + (
        f" = {ms:.0f} ms at {summary['fps']:g} fps" if ms is not None else " (fps unknown)"
    )
    if window and "in_target_window" in summary:
        text += (
            f", inside the target {span}"
            if summary["in_target_window"]
            else f", OUTSIDE the target {span}"
        )
    lines.append(text)
    frequent = [k for k in summary if k.startswith("syllables_over_")]
    lines.append(
        f"  syllables: {summary['syllables_used']} used"
        + "".join(
            f", {summary[k]} in over {100 * float(k.rsplit('_', 1)[1]):g} % of frames"
            for k in frequent
        )
    )
    if "calibration_slope" in summary:
        line = (
            f"  noise calibration: slope {summary['calibration_slope']:.3f}, intercept "
            f"{summary['calibration_intercept']:.3f} from "
            f"{summary['calibration_annotations']} annotations"
        )
        if "true_error_slope" in summary:
            line += (
                f" (generator's: {summary['true_error_slope']:.3f}, "
                f"{summary['true_error_intercept']:.3f})"
            )
        lines.append(line)
    if "nmi" in summary:
        line = (
            f"  NMI with the true states: {summary['nmi']:.2f} "
            f"(chance {summary['nmi_shuffled']:.2f})"
        )
        if "nmi_applied_sessions" in summary:
            line += f"; applied sessions alone {summary['nmi_applied_sessions']:.2f}"
        lines.append(line)
    selection_lines, selection_warnings = _selection_lines(summary, span)
    lines.extend(selection_lines)
    lines.extend(warnings + selection_warnings)
    lines.append("  all values: results/summary.tsv, results/summary.json")
    lines.append("  figures and tables: snakemake --report report.html")
    return "\n".join(lines) + "\n"
