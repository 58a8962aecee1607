"""Kappa search on real AR-HMM fits: parallel rounds (the workflow's planner) against the
seed's serial bisection.

    .venv/bin/python benchmarks/kappa_search.py [--datasets demo openfield ethome]
        [--probes 4] [--max-rounds 4] [--max-bisect 15] [--iters 25] [--out TSV]

For each dataset the data are prepared as the workflow does (kpms_flow.formats.load_session,
kpms_flow.qa.outlier_qa, keypoint_moseq.format_data, fit_pca with latent_dim "auto" at 90 %
variance, the config schema's defaults for every other setting), then the AR-HMM stage's
search for a median syllable duration of 300-400 ms runs twice over log10 kappa 3..18:

  parallel   kpms_flow.search.first_round / decide, --probes fits per round, at most
             --max-rounds rounds (4 and 4: the probes alone, without the confirmation
             at full length that benchmarks/duration_drift.py measures)
  bisection  one fit at the midpoint of the remaining log10 range; the half where the
             median duration crosses the window is kept; stops inside the window or after
             --max-bisect fits (the closest probe is taken then)

Every probe is one fresh AR-HMM fit of --iters iterations (ar_only, as rule probe_kappa:
``fit_model(num_iters=25, start_iter=0)``), seed 0, so a kappa always gives the same fit;
fits are cached by kappa within a dataset. The median duration is
kpms_flow.fitting.fit_metrics's. "rounds" counts serial steps of wall-clock time: a
bisection waits for each fit, a parallel round runs its probes at once (one job each).

Datasets:

  demo       kpms_flow.demo.generate_demo(n_sessions=4, n_frames=1800, n_heldout=0), 30 fps,
             num_states 25 (as config/demo.yaml)
  openfield  ../shared/data/pose/dlc_openfield_mouse/m3v1mp4DLC_resnet50_openfield...h5:
             one mouse, 2,330 frames, snout/leftear/rightear/tailbase, 30 fps
  ethome     ../shared/data/pose/ethome_social_mice/...el_filtered.csv: the two animals
             (adult, juvenile) as two sessions, 5,700 frames each, 7 keypoints, 30 fps

Prints every probe and a summary, and writes the summary to
benchmarks/results/kappa_search.tsv (or --out).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSE = (ROOT / ".." / "shared" / "data" / "pose").resolve()
sys.path.insert(0, str(ROOT / "scripts"))

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("KPMS_FLOW_JAX_CACHE", str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))

TARGET_MS = (300.0, 400.0)
SEED = 0

DATASETS = {
    "demo": {
        "anterior_bodyparts": ["nose"],
        "posterior_bodyparts": ["tailbase"],
        "trans_hypparams": {"num_states": 25},
    },
    "openfield": {
        "path": "dlc_openfield_mouse/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5",
        "animals": [""],
        "anterior_bodyparts": ["snout"],
        "posterior_bodyparts": ["tailbase"],
    },
    "ethome": {
        "path": "ethome_social_mice/e3v813a-20210610T122332-122642DLC_dlcrnetms5_pilot_study"
        "Sep24shuffle1_100000_el_filtered.csv",
        "animals": ["adult", "juvenile"],
        "anterior_bodyparts": ["nose"],
        "posterior_bodyparts": ["tail"],
    },
}

MODEL_KEYS = [
    "conf_pseudocount", "added_noise_level", "conf_threshold", "PCA_fitting_num_frames",
    "whiten", "fix_heading", "ar_hypparams", "trans_hypparams", "obs_hypparams",
    "cen_hypparams", "error_estimator", "skeleton", "use_bodyparts",
]


def schema_defaults() -> dict:
    """The config schema's defaults for the model keys (nested objects filled in)."""
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())

    def fill(prop):
        if prop.get("type") == "object" and "properties" in prop:
            return {k: fill(v) for k, v in prop["properties"].items() if "default" in v
                    or v.get("type") == "object"}
        return prop.get("default")

    props = schema["properties"]
    out = {key: fill(props[key]) for key in MODEL_KEYS if key in props}
    out.setdefault("skeleton", [])
    out.setdefault("use_bodyparts", None)
    return out


def load_dataset(name: str, scratch: Path):
    """Sessions of a dataset after load_session and outlier QA: (coordinates, confidences,
    bodyparts, fps)."""
    from kpms_flow.formats import load_session
    from kpms_flow.qa import outlier_qa

    spec = DATASETS[name]
    if name == "demo":
        from kpms_flow.demo import generate_demo

        table = generate_demo(scratch / "demo", n_sessions=4, n_frames=1800, n_heldout=0)
        sources = [(row.path, row.session, "", float(row.fps)) for row in table.itertuples()]
    else:
        path = POSE / spec["path"]
        if not path.exists():
            raise SystemExit(f"{path} not found: real-data benchmarks need ../shared beside the project")
        sources = [(path, f"{name}_{a or 'mouse'}", a, 30.0) for a in spec["animals"]]
    coordinates, confidences, fps = {}, {}, set()
    bodyparts = None
    for path, session, animal, rate in sources:
        kp = load_session(path, "deeplabcut", session, animal=animal, fps=rate)
        kp = outlier_qa(kp, outlier_scale_factor=6.0).clean
        bodyparts = bodyparts or list(kp.bodyparts)
        order = [list(kp.bodyparts).index(b) for b in bodyparts]
        coordinates[session] = kp.coordinates[:, order]
        confidences[session] = kp.confidences[:, order]
        fps.add(kp.fps)
    assert len(fps) == 1, fps
    return coordinates, confidences, bodyparts, fps.pop()


class Prober:
    """One dataset's formatted data and PCA; ``__call__(log10 kappa)`` fits one probe."""

    def __init__(self, name: str, scratch: Path, iters: int):
        import keypoint_moseq as kpms

        from kpms_flow.config import kpms_config
        from kpms_flow.model import choose_latent_dim

        self.name, self.scratch, self.iters = name, scratch, iters
        coordinates, confidences, bodyparts, self.fps = load_dataset(name, scratch)
        spec = DATASETS[name]
        cfg = schema_defaults()
        cfg["anterior_bodyparts"] = spec["anterior_bodyparts"]
        cfg["posterior_bodyparts"] = spec["posterior_bodyparts"]
        cfg["trans_hypparams"] = dict(cfg["trans_hypparams"], **spec.get("trans_hypparams", {}))
        kcfg = kpms_config(cfg, bodyparts)
        self.data, self.metadata = kpms.format_data(coordinates, confidences, **kcfg)
        self.pca = kpms.fit_pca(**self.data, **kcfg)
        self.latent_dim, _ = choose_latent_dim(self.pca, "auto", 0.9)
        self.kcfg = kpms_config(cfg, bodyparts, latent_dim=self.latent_dim)
        self.frames = int(sum(len(c) for c in coordinates.values()))
        self.cache: dict[float, dict] = {}
        self.fit_seconds: list[float] = []

    def __call__(self, log10_kappa: float) -> dict:
        import keypoint_moseq as kpms

        from kpms_flow.fitting import init_arhmm
        from kpms_flow.fitting import fit_metrics as probe_metrics

        key = round(float(log10_kappa), 12)
        if key in self.cache:
            return dict(self.cache[key], cached=True)
        start = time.perf_counter()
        model = init_arhmm(self.data, self.pca, self.kcfg, 10.0**log10_kappa, SEED, self.fps)
        model, _ = kpms.fit_model(
            model, self.data, self.metadata, project_dir=str(self.scratch),
            model_name=f"{self.name}_probe", num_iters=self.iters, start_iter=0,
            ar_only=True, save_every_n_iters=None, generate_progress_plots=False,
            verbose=False,
        )
        metrics = probe_metrics(model, self.data, self.fps)
        seconds = time.perf_counter() - start
        self.fit_seconds.append(seconds)
        result = dict(metrics, seconds=seconds, cached=False)
        self.cache[key] = result
        return result


def show(name, strategy, step, log10_kappa, result, window) -> None:
    mark = "*" if window.contains(result["median_duration_frames"]) else " "
    print(
        f"  {name:9s} {strategy:9s} {step:>3}  log10 kappa {log10_kappa:7.3f}  median "
        f"{result['median_duration_frames']:6.1f} frames {result['median_duration_ms']:7.1f} ms "
        f"{mark} {result['syllables']:3d} syllables  {result['seconds']:5.1f} s"
        + (" (cached)" if result["cached"] else ""),
        flush=True,
    )


def parallel_search(prober, window, bounds, n_probes, max_rounds) -> dict:
    import pandas as pd

    from kpms_flow.search import PROBE_COLUMNS, decide, first_round

    decision = first_round(bounds, window, n_probes)
    rows = []
    for round_ in range(1, max_rounds + 1):
        for probe in decision.itertuples():
            log_kappa = math.log10(probe.kappa)
            result = prober(log_kappa)
            show(prober.name, "parallel", round_, log_kappa, result, window)
            rows.append({
                "stage": "arhmm", "round": round_, "probe": probe.probe, "kappa": probe.kappa,
                "log10_kappa": log_kappa, "median_duration_frames": result["median_duration_frames"],
                "median_duration_ms": result["median_duration_ms"],
                "syllables": result["syllables"], "iterations": prober.iters,
            })
        history = pd.DataFrame(rows, columns=PROBE_COLUMNS)
        decision = decide(history, window, round_, max_rounds, bounds, n_probes)
        if decision["status"].iloc[0] != "continue":
            break
    final = decision.iloc[0]
    best = history[(history["round"] == final["chosen_round"])
                   & (history["probe"] == final["chosen_probe"])].iloc[0]
    return {
        "status": final["status"], "rounds": round_, "fits": len(history),
        "kappa": float(best["kappa"]), "median_duration_frames": float(best["median_duration_frames"]),
        "syllables": int(best["syllables"]),
    }


def bisection(prober, window, bounds, max_fits) -> dict:
    lo, hi = bounds
    probes = []
    status = "exhausted"
    for step in range(1, max_fits + 1):
        mid = (lo + hi) / 2
        result = prober(mid)
        show(prober.name, "bisection", step, mid, result, window)
        probes.append((mid, result))
        duration = result["median_duration_frames"]
        if window.contains(duration):
            status = "converged"
            break
        # Longer than the window: less stickiness; shorter: more.
        lo, hi = (lo, mid) if duration > window.high else (mid, hi)
    mid, best = min(probes, key=lambda p: window.distance(p[1]["median_duration_frames"]))
    return {
        "status": status, "rounds": len(probes), "fits": len(probes), "kappa": 10.0**mid,
        "median_duration_frames": best["median_duration_frames"], "syllables": best["syllables"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--max-rounds", type=int, default=4)
    parser.add_argument("--max-bisect", type=int, default=15)
    parser.add_argument("--iters", type=int, default=25)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kappa_search.tsv"))
    args = parser.parse_args(argv)

    from kpms_flow.runtime import configure_jax

    configure_jax(threads=max(os.cpu_count() or 1, 1))
    import pandas as pd

    from kpms_flow.search import stage_bounds, window_in_frames

    bounds = stage_bounds("arhmm", {"arhmm_log10_kappa": [3, 18]})
    rows = []
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kpms_flow_kappa_bench_") as scratch:
        for name in args.datasets:
            start, load_before = time.perf_counter(), os.getloadavg()[0]
            prober = Prober(name, Path(scratch), args.iters)
            window = window_in_frames(TARGET_MS, prober.fps)
            print(f"{name}: {prober.frames} frames, latent_dim {prober.latent_dim}, "
                  f"window {window.low:g}-{window.high:g} frames", flush=True)
            results = {
                "parallel": parallel_search(prober, window, bounds, args.probes, args.max_rounds),
                "bisection": bisection(prober, window, bounds, args.max_bisect),
            }
            fits = sorted(prober.fit_seconds)
            for strategy, r in results.items():
                rows.append({
                    "dataset": name, "frames": prober.frames, "latent_dim": prober.latent_dim,
                    "strategy": strategy,
                    "probes_per_round": args.probes if strategy == "parallel" else 1,
                    "rounds": r["rounds"], "fits": r["fits"], "status": r["status"],
                    "chosen_kappa": r["kappa"], "log10_kappa": math.log10(r["kappa"]),
                    "median_duration_frames": r["median_duration_frames"],
                    "median_duration_ms": 1000.0 * r["median_duration_frames"] / prober.fps,
                    "syllables": r["syllables"],
                    # Rough: the machine is shared; the first fit of a dataset includes JIT.
                    "median_fit_s": fits[len(fits) // 2],
                    # 1-min load average at the dataset's start / end: the machine is shared.
                    "load_before": round(load_before, 2),
                    "load_after": round(os.getloadavg()[0], 2),
                })
            print(f"{name}: {len(prober.cache)} distinct fits, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False, float_format="%.4g")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"total {time.perf_counter() - total:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
