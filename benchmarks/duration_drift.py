"""Median duration drift, and the kappa search with and without confirmation, on real fits,
against keypoint-moseq's documented kappa scan (issue 14).

    .venv/bin/python benchmarks/duration_drift.py [--datasets openfield demo ethome]
        [--threads 1] [--out TSV]

For each dataset (prepared as benchmarks/kappa_search.py prepares it: the workflow's
loading, QA, format_data, PCA, latent_dim "auto"), three ways to a kappa:

  probes      the planner without confirmation (``confirm_probes: 0``, the behaviour before
              issue 14): each stage's search ends on a 25-iteration probe inside the window;
              the final fit continues it to the stage's length (AR-HMM 50, full model 200),
              as restart 0 does in the workflow
  confirmed   the planner as shipped (``confirm_probes: 2``, ``max_rounds: 6``): only a
              fit of the stage's length inside the window ends a search
  scan        keypoint-moseq's documented kappa scan (field-facts.md): kappa in
              logspace(3, 7, 5), 50 AR-HMM iterations at kappa, then 200 full-model
              iterations at kappa / 10; the scan's fit closest to the window is the choice

Fits run in-process with keypoint-moseq's fit_model, seed 0, 30 fps, the window 300-400 ms.
Every kappa fitted both as a 25-iteration probe and at the stage's length (from the same
start) gives the drift of its median duration: benchmarks/results/duration_drift_pairs.tsv.
"iterations" counts the sweeps each way fits (a fit continued from an earlier one counts
only its new sweeps; fits shared by both planners are counted for each). Writes
benchmarks/results/duration_drift.tsv (or --out) and prints every fit.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kappa_search import DATASETS, ROOT, TARGET_MS, Prober  # noqa: E402

PROBE_ITERS = 25
STAGE_ITERS = {"arhmm": 50, "full_model": 200}
SCAN_KAPPAS = [1e3, 1e4, 1e5, 1e6, 1e7]
SCAN_DECREASE = 10.0


class Fits:
    """One dataset's fits, kept in memory so that a fit can be continued; cached by key."""

    def __init__(self, name: str, scratch: Path):
        self.prober = Prober(name, scratch, PROBE_ITERS)
        self.name, self.fps = name, self.prober.fps
        self.cache: dict[tuple, dict] = {}

    def fit(self, key: tuple, make_start, end: int, ar_only: bool, base: int) -> dict:
        """Fit to sweep ``end`` from ``make_start() -> (model, start_iter)``; cached by key.
        ``base``: the iteration it starts from (its new iterations are end - base)."""
        import keypoint_moseq as kpms

        from kpms_flow.fitting import fit_metrics

        if key in self.cache:
            return self.cache[key]
        model, start = make_start()
        began = time.perf_counter()
        p = self.prober
        model, _ = kpms.fit_model(
            model, p.data, p.metadata, project_dir=str(p.scratch), model_name=f"{self.name}_fit",
            num_iters=end, start_iter=start, ar_only=ar_only, save_every_n_iters=None,
            generate_progress_plots=False, verbose=False,
        )
        metrics = fit_metrics(model, p.data, self.fps)
        out = dict(metrics, model=model, end=end, new_sweeps=end - base,
                   seconds=time.perf_counter() - began)
        self.cache[key] = out
        print(f"  {self.name:9s} {str(key):70.70s} median {metrics['median_duration_frames']:5.1f} "
              f"frames, {metrics['syllables']:3d} syllables, {out['seconds']:6.1f} s", flush=True)
        return out

    def arhmm(self, log_k: float, iters: int, source: tuple | None = None) -> tuple[tuple, dict]:
        from kpms_flow.fitting import init_arhmm

        key = ("arhmm", round(log_k, 9), iters)
        if source is not None:
            before = self.cache[source]
            return key, self.fit(key, lambda: (before["model"], before["end"] + 1), iters, True,
                                 before["end"])
        p = self.prober
        return key, self.fit(
            key, lambda: (init_arhmm(p.data, p.pca, p.kcfg, 10.0**log_k, 0, self.fps), 0),
            iters, True, 0)

    def full(self, start_key: tuple, log_k: float, iters: int,
             source: tuple | None = None) -> tuple[tuple, dict]:
        import keypoint_moseq as kpms

        ar = self.cache[start_key]
        key = ("full", start_key, round(log_k, 9), iters)
        end = ar["end"] + iters
        if source is not None:
            before = self.cache[source]
            return key, self.fit(key, lambda: (before["model"], before["end"] + 1), end, False,
                                 before["end"])
        return key, self.fit(
            key, lambda: (kpms.update_hypparams(ar["model"], kappa=10.0**log_k), ar["end"]),
            end, False, ar["end"])


def search(fits: Fits, stage: str, bounds, limits, window, confirm: int, start_key=None):
    """One stage's search as the workflow runs it; returns the chosen fit's key and a record."""
    import pandas as pd

    from kpms_flow.search import PROBE_COLUMNS, decide, first_round

    stage_iters = STAGE_ITERS[stage]
    decision = first_round(bounds, window, 4)
    rows, keys, sweeps = [], {}, 0
    for round_ in range(1, 7):
        for probe in decision.itertuples():
            iters = probe.iterations if probe.iterations > 0 else PROBE_ITERS
            source = None
            if probe.source_round >= 0:
                source = keys[(probe.source_round, probe.source_probe)]
            log_k = math.log10(probe.kappa)
            if stage == "arhmm":
                key, out = fits.arhmm(log_k, iters, source)
            else:
                key, out = fits.full(start_key, log_k, iters, source)
            keys[(round_, probe.probe)] = key
            sweeps += out["new_sweeps"]
            rows.append({"stage": stage, "round": round_, "probe": probe.probe,
                         "kappa": probe.kappa, "log10_kappa": log_k,
                         "median_duration_frames": out["median_duration_frames"],
                         "median_duration_ms": out["median_duration_ms"],
                         "syllables": out["syllables"], "iterations": iters,
                         "source_round": probe.source_round, "source_probe": probe.source_probe})
        history = pd.DataFrame(rows, columns=PROBE_COLUMNS)
        carried = (float(decision["log10_lower"].iloc[0]), float(decision["log10_upper"].iloc[0]))
        decision = decide(history, window, round_, 6, carried, 4, limits,
                          stage_iters=stage_iters, confirm_probes=confirm)
        if decision["status"].iloc[0] != "continue":
            break
    final = decision.iloc[0]
    chosen = history[(history["round"] == final["chosen_round"])
                     & (history["probe"] == final["chosen_probe"])].iloc[0]
    # Restart 0 continues the chosen fit to the stage's length (nothing left if it is there).
    chosen_key = keys[(int(chosen["round"]), int(chosen["probe"]))]
    log_k = float(chosen["log10_kappa"])
    if int(chosen["iterations"]) < stage_iters:
        if stage == "arhmm":
            final_key, out = fits.arhmm(log_k, stage_iters, chosen_key)
        else:
            final_key, out = fits.full(start_key, log_k, stage_iters, chosen_key)
        sweeps += out["new_sweeps"]
    else:
        final_key, out = chosen_key, fits.cache[chosen_key]
    # The probe duration: the chosen probe's own, or that of the probe it continued (none
    # for a fit run at full length from the start).
    probe_ms = float(chosen["median_duration_ms"])
    if int(chosen["iterations"]) >= stage_iters and int(chosen["source_round"]) < 0:
        probe_ms = float("nan")
    if int(chosen["source_round"]) >= 0:
        source = history[(history["round"] == chosen["source_round"])
                         & (history["probe"] == chosen["source_probe"])].iloc[0]
        probe_ms = float(source["median_duration_ms"])
    record = {
        "status": final["status"], "rounds": round_, "fits": len(history),
        "log10_kappa": log_k, "probe_ms": probe_ms, "final_ms": out["median_duration_ms"],
        "inside": window.contains(out["median_duration_frames"]), "iterations": sweeps,
        "syllables": out["syllables"],
    }
    return final_key, record


def run_planner(fits: Fits, window, confirm: int) -> dict:
    from kpms_flow.search import stage_bounds

    ar_bounds = stage_bounds("arhmm", {"arhmm_log10_kappa": [3, 18]})
    ar_key, ar = search(fits, "arhmm", ar_bounds, (-3.0, 20.0), window, confirm)
    full_bounds = stage_bounds("full_model", {"full_model_log10_kappa_offset": [-4.5, 0]},
                               10.0 ** ar["log10_kappa"])
    _, full = search(fits, "full_model", full_bounds, (-3.0, full_bounds[1]), window, confirm,
                     start_key=ar_key)
    return {"arhmm": ar, "full_model": full}


def run_scan(fits: Fits, window) -> dict:
    results, sweeps = [], 0
    for kappa in SCAN_KAPPAS:
        ar_key, ar = fits.arhmm(math.log10(kappa), STAGE_ITERS["arhmm"])
        _, full = fits.full(ar_key, math.log10(kappa / SCAN_DECREASE), STAGE_ITERS["full_model"])
        sweeps += STAGE_ITERS["arhmm"] + STAGE_ITERS["full_model"]
        results.append((kappa, full))
    kappa, best = min(results, key=lambda r: window.distance(r[1]["median_duration_frames"]))
    inside = [k for k, r in results if window.contains(r["median_duration_frames"])]
    return {"log10_kappa": math.log10(kappa / SCAN_DECREASE), "final_ms": best["median_duration_ms"],
            "inside": bool(inside), "kappas_inside": len(inside), "iterations": sweeps,
            "syllables": best["syllables"],
            "all_ms": ", ".join(f"{r['median_duration_ms']:.0f}" for _, r in results)}


def drift_pairs(fits: Fits) -> list[dict]:
    """Every kappa fitted both as a probe and at the stage's length, from the same start:
    the drift of its median duration."""
    rows = []
    for key, fit in fits.cache.items():
        stage = "arhmm" if key[0] == "arhmm" else "full_model"
        if key[-1] != PROBE_ITERS:
            continue
        longer = fits.cache.get(key[:-1] + (STAGE_ITERS[stage],))
        if longer is None:
            continue
        rows.append({"dataset": fits.name, "stage": stage, "log10_kappa": key[-2],
                     "start": "" if stage == "arhmm" else f"AR-HMM log10 kappa {key[1][1]:g}",
                     "probe_ms": fit["median_duration_ms"], "final_ms": longer["median_duration_ms"],
                     "drift": longer["median_duration_ms"] / fit["median_duration_ms"],
                     "probe_syllables": fit["syllables"], "final_syllables": longer["syllables"]})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["openfield", "demo", "ethome"],
                        choices=list(DATASETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "duration_drift.tsv"))
    args = parser.parse_args(argv)

    from kpms_flow.runtime import configure_jax

    configure_jax(threads=args.threads)
    import pandas as pd

    from kpms_flow.search import window_in_frames

    rows, pairs = [], []
    with tempfile.TemporaryDirectory(prefix="kpms_flow_drift_bench_") as scratch:
        for name in args.datasets:
            began, load = time.perf_counter(), os.getloadavg()[0]
            fits = Fits(name, Path(scratch))
            window = window_in_frames(TARGET_MS, fits.fps)
            print(f"{name}: {fits.prober.frames} frames, latent_dim {fits.prober.latent_dim}",
                  flush=True)
            for way, confirm in (("probes", 0), ("confirmed", 2)):
                result = run_planner(fits, window, confirm)
                for stage, r in result.items():
                    rows.append({"dataset": name, "frames": fits.prober.frames, "way": way,
                                 "stage": stage, **r})
            scan = run_scan(fits, window)
            rows.append({"dataset": name, "frames": fits.prober.frames, "way": "scan",
                         "stage": "full_model", "status": f"{scan['kappas_inside']} of 5 inside",
                         **{k: v for k, v in scan.items() if k != "kappas_inside"}})
            print(f"{name}: {len(fits.cache)} fits, {time.perf_counter() - began:.0f} s, "
                  f"load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
            pairs += drift_pairs(fits)
            table = pd.DataFrame(rows)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.out, sep="\t", index=False, float_format="%.4g")
            pd.DataFrame(pairs).to_csv(Path(args.out).with_name("duration_drift_pairs.tsv"),
                                       sep="\t", index=False, float_format="%.4g")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
