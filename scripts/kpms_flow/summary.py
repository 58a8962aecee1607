"""The run summary: what a scientist checks first after a fit."""

from __future__ import annotations

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
        "frames": int(pooled.size),
        "fps": fps,
        "latent_dim": int(latent_dim),
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


def format_summary(summary: dict) -> str:
    lines = ["kpms-flow run summary"]
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"  {key:<28} {value}")
    return "\n".join(lines) + "\n"
