"""The GPU check: the pipeline's fits on a real GPU against bare keypoint-moseq, compile
time with a cold and a warm cache, and peak GPU memory against the memory plan.

    bash benchmarks/gpu/check.sh                         # the GPU machine: everything, < 8 min
    .venv/bin/python benchmarks/gpu/check.py --cpu-fallback --out /tmp/gpu-check   # a CPU

Every measurement runs in a child process of its own (a fresh JAX: its own peak memory, its
own compilation), in this order, each only while the time budget (--budget-s) lasts:

1. env: JAX's version and devices, how keypoint-moseq was imported (kpms_lean.py).
2. probe (cold cache): kpms_flow.demo's sessions loaded and cleaned as the rules do
   (load_session, outlier_qa, format_data, fit_pca), then an AR-HMM probe and a full-model
   probe continued from it, each through the pipeline's FitSpec / run_fit with the plan of
   plan_for_job, as rules probe_kappa / fit_arhmm / fit_full_model run them; with a new,
   empty JAX persistent compilation cache.
3. pipeline (warm cache): the same, with --arhmm-iters and --full-iters, on the cache step 2
   filled; its syllables are kept.
4. bare (warm cache): benchmarks/bare_kpms.py's run_bare on the same sessions, settings and
   cache (keypoint-moseq's notebook sequence); its syllables are compared with step 3's.
5. sizes: for each of --sizes frames, synthetic data (the demo's sessions tiled, with a
   little noise), latent_dim --size-latent-dim, --size-num-states states, a few full-model
   sweeps through run_fit with the memory plan's settings; peak GPU memory from JAX
   (``memory_stats()["peak_bytes_in_use"]``; host RSS in --cpu-fallback) against the plan's
   estimate. Where the plan chose sequential message passing, parallel is tried too, to
   tell whether the plan was right or too cautious.

Per sweep, time is measured by wrapping jax-moseq's ``resample_model`` (waiting for the
result), and per fit by wrapping ``keypoint_moseq.fit_model``: both paths call the same
functions, so the same clocks time them. Compilation comes from JAX's own monitoring events
(tracing, lowering, XLA compile or cache load) and cache hit/miss counts.

Writes to --out: speed.tsv, compile.tsv, memory.tsv, plan.tsv, gpu_check.md (all four
tables, with the environment) and check.json (everything, raw). Exit status 0 when every
step ran, 1 when one failed or was skipped for time, 2 when no GPU is there and
--cpu-fallback was not given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

KAPPA_ARHMM = 1.0e4  # the demo's (config/demo.yaml), as benchmarks/pipeline_overhead.py
KAPPA_FULL = 1.0e3
SEED = 0
ANTERIOR, POSTERIOR = ["nose"], ["tailbase"]
MB = 2.0**20

GPU_DEFAULTS = dict(
    demo_sessions=4, demo_frames=10_000, probe_iters=25, arhmm_iters=50, full_iters=100,
    sizes=[100_000, 1_000_000, 5_000_000], size_iters=3, budget_s=420,
)
CPU_DEFAULTS = dict(
    demo_sessions=2, demo_frames=600, probe_iters=5, arhmm_iters=10, full_iters=10,
    sizes=[2_000, 6_000], size_iters=2, budget_s=1500,
)


# ====================================================================== child processes
def _paths() -> None:
    for path in (ROOT / "scripts", ROOT / "benchmarks", HERE):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


class Clocks:
    """Per-sweep and per-fit_model times, and JAX's compilation events, in one process."""

    def __init__(self):
        self.sweeps: list[dict] = []
        self.fits: list[dict] = []
        self.jit = {"trace_s": 0.0, "lower_s": 0.0, "compile_s": 0.0, "hits": 0, "misses": 0}

    def install(self) -> None:
        import jax
        import jax.monitoring as monitoring
        import keypoint_moseq
        from jax_moseq.models import allo_keypoint_slds, keypoint_slds

        events = {
            "/jax/core/compile/jaxpr_trace_duration": "trace_s",
            "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
            # XLA compilation, or loading the executable from the persistent cache
            "/jax/core/compile/backend_compile_duration": "compile_s",
        }
        counts = {
            "/jax/compilation_cache/cache_hits": "hits",
            "/jax/compilation_cache/cache_misses": "misses",
        }

        def on_duration(event, duration, **_):
            if event in events:
                self.jit[events[event]] += float(duration)

        def on_event(event, **_):
            if event in counts:
                self.jit[counts[event]] += 1

        monitoring.register_event_duration_secs_listener(on_duration)
        monitoring.register_event_listener(on_event)

        # Outermost wrapper: keypoint-moseq looks resample_model up on the module at each
        # sweep, and the pipeline's own wrappers (re-typing, heartbeat) are already in.
        for module in (keypoint_slds, allo_keypoint_slds):
            original = module.resample_model

            def resample_model(*args, _original=original, **kwargs):
                start = time.perf_counter()
                model = jax.block_until_ready(_original(*args, **kwargs))
                end = time.perf_counter()
                self.sweeps.append(
                    {
                        "ar_only": bool(kwargs.get("ar_only", False)),
                        "parallel": kwargs.get("parallel_message_passing"),
                        "seconds": end - start,
                        "end": end,
                    }
                )
                return model

            module.resample_model = resample_model

        fit_model = keypoint_moseq.fit_model

        def timed_fit_model(*args, **kwargs):
            record = {"start": time.perf_counter(), "first_sweep": len(self.sweeps)}
            try:
                return fit_model(*args, **kwargs)
            finally:
                record["end"] = time.perf_counter()
                record["last_sweep"] = len(self.sweeps)
                self.fits.append(record)

        keypoint_moseq.fit_model = timed_fit_model

    def mark(self) -> dict:
        return {"sweeps": len(self.sweeps), "fits": len(self.fits), "jit": dict(self.jit),
                "t": time.perf_counter()}

    def since(self, mark: dict) -> dict:
        """Sweeps, fit_model calls and compilation between ``mark`` and now."""
        sweeps = self.sweeps[mark["sweeps"]:]
        fits = self.fits[mark["fits"]:]
        seconds = [s["seconds"] for s in sweeps]
        out = {
            "wall_s": time.perf_counter() - mark["t"],
            "sweeps": len(sweeps),
            "first_sweep_s": seconds[0] if seconds else math.nan,
            "median_sweep_s": median_compiled(seconds),
            "jit": {k: self.jit[k] - mark["jit"][k] for k in self.jit},
            "parallel_message_passing": sweeps[0]["parallel"] if sweeps else None,
        }
        out["per_iter_s"] = per_iteration(self.sweeps, fits)
        out["fit_model_s"] = sum(f["end"] - f["start"] for f in fits)
        return out


def median_compiled(seconds: list[float]) -> float:
    """Median sweep time once compiled (the first two sweeps left out; one if fewer than 4)."""
    skip = 2 if len(seconds) >= 4 else 1
    return statistics.median(seconds[skip:]) if len(seconds) > skip else math.nan


def per_iteration(sweeps: list[dict], fits: list[dict]) -> float:
    """Seconds per iteration once compiled: from the end of each fit_model call's second
    sweep (its first when it has fewer than 4) to the call's return, over the sweeps after
    it; saves and progress plots included. jax-moseq's first two sweeps may still compile
    (kpms_flow's sweep re-typing makes the types stable from the third on)."""
    spans, count = 0.0, 0
    for fit in fits:
        own = sweeps[fit["first_sweep"]:fit["last_sweep"]]
        skip = 2 if len(own) >= 4 else 1
        if len(own) > skip:
            spans += fit["end"] - own[skip - 1]["end"]
            count += len(own) - skip
    return spans / count if count else math.nan


def device_memory() -> dict:
    """Peak memory so far: the GPU's from JAX, else this process's peak RSS (CPU)."""
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return {
            "peak_mb": stats["peak_bytes_in_use"] / MB,
            "limit_mb": stats.get("bytes_limit", math.nan) / MB,
            "source": "GPU peak_bytes_in_use",
        }
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB
    return {"peak_mb": rss_mb, "limit_mb": total_mb, "source": "host peak RSS (CPU)"}


def fitting_api():
    """The pipeline's fitting engine (FitSpec, run_fit, init_arhmm, continue_with_kappa)."""
    import kpms_flow.fitting

    return kpms_flow.fitting


def model_settings(num_states: int) -> dict:
    """The config schema's defaults for the model keys, with the demo's anatomy."""
    from kappa_search import schema_defaults

    cfg = schema_defaults()
    cfg["anterior_bodyparts"], cfg["posterior_bodyparts"] = ANTERIOR, POSTERIOR
    cfg["trans_hypparams"] = dict(cfg["trans_hypparams"], num_states=int(num_states))
    return cfg


def schema_default(key: str):
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    return schema["properties"][key]["default"]


def load_demo(sessions_tsv: str, qa: bool):
    """The demo's sessions as rule prepare_session leaves them."""
    import pandas as pd

    from kpms_flow.formats import load_session
    from kpms_flow.qa import outlier_qa

    table = pd.read_csv(sessions_tsv, sep="\t", keep_default_na=False)
    coordinates, confidences, bodyparts = {}, {}, None
    for row in table.itertuples():
        kp = load_session(row.path, row.format, row.session, fps=float(row.fps))
        if qa:
            kp = outlier_qa(kp, schema_default("outlier_scale_factor")).clean
        bodyparts = bodyparts or list(kp.bodyparts)
        order = [list(kp.bodyparts).index(b) for b in bodyparts]
        coordinates[row.session] = kp.coordinates[:, order]
        confidences[row.session] = kp.confidences[:, order]
    return coordinates, confidences, bodyparts, float(table["fps"].iloc[0])


def pipeline_fits(p: dict, clocks: Clocks, log) -> dict:
    """Probe-, AR-HMM- and full-model-style fits through the pipeline's fitting code."""
    import keypoint_moseq as kpms

    from kpms_flow.config import kpms_config
    from kpms_flow.model import choose_latent_dim
    from kpms_flow.resources import plan_for_job

    api = fitting_api()
    coordinates, confidences, bodyparts, fps = load_demo(p["sessions"], qa=True)
    cfg = model_settings(p["num_states"])
    kcfg = kpms_config(cfg, bodyparts)
    data, metadata = kpms.format_data(coordinates, confidences, **kcfg)
    pca = kpms.fit_pca(**data, **kcfg)
    latent_dim, _ = choose_latent_dim(pca, p["latent_dim"], 0.9)
    kcfg = kpms_config(cfg, bodyparts, latent_dim=latent_dim)
    plan = plan_for_job(int(data["mask"].size), latent_dim, None, log)
    work = Path(p["work"])
    every = schema_default("save_every_n_iters")
    stages = {}

    mark = clocks.mark()
    ar = api.FitSpec(
        work_dir=work / "arhmm" / "work", output=work / "arhmm" / "checkpoint.h5",
        num_iters=p["arhmm_iters"], ar_only=True, save_every_n_iters=every, fps=fps,
        fingerprint=api.fingerprint("gpu-check", "arhmm", p["arhmm_iters"]),
    )
    ar.use_memory_plan(plan)
    api.run_fit(ar, data, metadata,
                lambda: (api.init_arhmm(data, pca, kcfg, KAPPA_ARHMM, SEED, fps), 0))
    stages["arhmm"] = dict(clocks.since(mark), iterations=p["arhmm_iters"])

    mark = clocks.mark()
    full = api.FitSpec(
        work_dir=work / "full" / "work", output=work / "full" / "checkpoint.h5",
        num_iters=p["arhmm_iters"] + p["full_iters"], ar_only=False, save_every_n_iters=every,
        fps=fps, fingerprint=api.fingerprint("gpu-check", "full", p["full_iters"]),
    )
    full.use_memory_plan(plan)
    model = api.run_fit(full, data, metadata,
                        lambda: api.continue_with_kappa(ar.output, KAPPA_FULL))
    stages["full_model"] = dict(clocks.since(mark), iterations=p["full_iters"])

    result = {"stages": stages, "latent_dim": latent_dim, "frames": int(data["mask"].sum()),
              "plan": plan.describe()}
    if p.get("labels"):
        results = kpms.extract_results(model, metadata, path=str(work / "results.h5"))
        save_labels(p["labels"], {name: r["syllable"] for name, r in results.items()})
    return result


def save_labels(path: str, labels: dict) -> None:
    import numpy as np

    np.savez(path, **{name: np.asarray(z) for name, z in labels.items()})


def bare_fits(p: dict, clocks: Clocks) -> dict:
    """The same fits through benchmarks/bare_kpms.py (keypoint-moseq's notebook sequence)."""
    import pandas as pd
    from bare_kpms import run_bare

    table = pd.read_csv(p["sessions"], sep="\t", keep_default_na=False)
    run = run_bare(
        table["path"].tolist(), [], p["work"], latent_dim=p["latent_dim"],
        arhmm_kappa=KAPPA_ARHMM, full_kappa=KAPPA_FULL, arhmm_iters=p["arhmm_iters"],
        full_iters=p["full_iters"], num_states=p["num_states"], seed=SEED,
        anterior=ANTERIOR, posterior=POSTERIOR, fps=int(round(float(table["fps"].iloc[0]))),
    )
    # Split the clocks by stage: the AR-HMM's sweeps are ar_only, the full model's are not.
    stages = {}
    for stage, ar_only in (("arhmm", True), ("full_model", False)):
        own = [s for s in clocks.sweeps if s["ar_only"] == ar_only]
        fits = [f for f in clocks.fits
                if clocks.sweeps[f["first_sweep"]:f["last_sweep"]]
                and clocks.sweeps[f["first_sweep"]]["ar_only"] == ar_only]
        seconds = [s["seconds"] for s in own]
        stages[stage] = {
            "iterations": p["arhmm_iters"] if ar_only else p["full_iters"],
            "sweeps": len(own),
            "first_sweep_s": seconds[0] if seconds else math.nan,
            "median_sweep_s": median_compiled(seconds),
            "per_iter_s": per_iteration(clocks.sweeps, fits),
            # the notebook step: init_model or load_checkpoint + update_hypparams, fit_model
            "wall_s": run["timings"]["fit_arhmm" if ar_only else "fit_full_model"],
        }
    # bare_kpms names a recording after its file; the pipeline after its session.
    by_file = {Path(path).stem: session for path, session in zip(table["path"], table["session"])}
    labels = {by_file.get(name, name): r["syllable"] for name, r in run["results"].items()}
    if p.get("labels"):
        save_labels(p["labels"], labels)
    return {"stages": stages, "jit": clocks.jit, "timings": run["timings"]}


def tiled_sessions(sessions_tsv: str, frames: int, seed: int = 1):
    """``frames`` frames of synthetic data: the demo's sessions repeated (each copy with
    0.5 px of noise, so no two segments are equal) into recordings of the demo's length."""
    import numpy as np

    coordinates, confidences, bodyparts, fps = load_demo(sessions_tsv, qa=False)
    names = list(coordinates)
    rng = np.random.default_rng(seed)
    out_c, out_k, left, i = {}, {}, int(frames), 0
    while left > 0:
        source = names[i % len(names)]
        n = min(left, len(coordinates[source]))
        c = coordinates[source][:n]
        out_c[f"tile_{i:05d}"] = c + rng.normal(scale=0.5, size=c.shape)
        out_k[f"tile_{i:05d}"] = confidences[source][:n]
        left -= n
        i += 1
    return out_c, out_k, bodyparts, fps


def size_fit(p: dict, clocks: Clocks, log) -> dict:
    """Peak memory of a few full-model sweeps at one size, with the plan's settings or one
    message-passing mode forced."""
    import keypoint_moseq as kpms

    from kpms_flow.config import kpms_config
    from kpms_flow.resources import (
        SEQUENTIAL_MESSAGE_PASSING_SAVING,
        device_memory_mb,
        plan_fit_memory,
        plan_for_job,
    )

    api = fitting_api()
    result = {"frames": p["frames"], "mode": p["mode"], "latent_dim": p["latent_dim"],
              "num_states": p["num_states"], "status": "error"}
    try:
        t0 = time.perf_counter()
        coordinates, confidences, bodyparts, fps = tiled_sessions(p["sessions"], p["frames"])
        kcfg = kpms_config(model_settings(p["num_states"]), bodyparts)
        data, metadata = kpms.format_data(coordinates, confidences, **kcfg)
        del coordinates, confidences
        pca = kpms.fit_pca(**data, **kcfg)
        kcfg = kpms_config(model_settings(p["num_states"]), bodyparts, latent_dim=p["latent_dim"])
        padded = int(data["mask"].size)
        plan = plan_for_job(padded, p["latent_dim"], None, log)
        on_gpu, reported_mb = device_memory_mb()
        # On the CPU the plan is keypoint-moseq's CPU default; the GPU logic is evaluated
        # too, with the host's memory standing in for the GPU's, so that it runs somewhere.
        as_gpu = plan if on_gpu else plan_fit_memory(padded, p["latent_dim"], device_memory()["limit_mb"], True)
        result.update(
            padded_frames=padded, estimate_mb=plan.estimated_mb,
            available_mb=as_gpu.available_mb, plan_parallel=as_gpu.parallel_message_passing,
            plan_mixed_map_iters=as_gpu.mixed_map_iters, plan_reason=as_gpu.reason,
            plan_for_job=plan.describe(), prepare_s=time.perf_counter() - t0,
        )
        spec = api.FitSpec(
            work_dir=Path(p["work"]) / "work", output=Path(p["work"]) / "checkpoint.h5",
            num_iters=p["iters"], ar_only=False, save_every_n_iters=p["iters"], fps=fps,
            fingerprint=api.fingerprint("gpu-check-size", p),
        )
        spec.use_memory_plan(plan)  # what the rules run with on this device
        if p["mode"] != "plan":
            spec.parallel_message_passing = p["mode"] == "parallel"
            spec.mixed_map_iters = 1
        result["parallel_message_passing"] = bool(spec.parallel_message_passing)
        result["mixed_map_iters"] = spec.mixed_map_iters
        result["mode_estimate_mb"] = plan.estimated_mb if spec.parallel_message_passing else (
            plan.estimated_mb / SEQUENTIAL_MESSAGE_PASSING_SAVING / spec.mixed_map_iters)
        model = api.init_arhmm(data, pca, kcfg, KAPPA_ARHMM, SEED, fps)
        result["peak_before_fit_mb"] = device_memory()["peak_mb"]
        mark = clocks.mark()
        api.run_fit(spec, data, metadata, lambda: (model, 0))
        result.update(clocks.since(mark), status="ok")
    except Exception as error:  # noqa: BLE001 - an out-of-memory is a result here
        text = f"{type(error).__name__}: {error}"
        result["error"] = text[:2000]
        oom = "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()
        result["status"] = "out of memory" if oom else "error"
    result.update({f"memory_{k}": v for k, v in device_memory().items()})
    return result


def environment(p: dict, how: str) -> dict:
    import importlib.metadata as md
    import platform

    import jax

    versions = {}
    for dist in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin",
                 "jax-cuda12-pjrt", "numpy", "keypoint-moseq", "jax-moseq", "dynamax",
                 "tfp-nightly", "h5py", "pandas", "scipy", "scikit-learn"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    devices = jax.devices()
    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "versions": versions,
        "devices": [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in devices],
        "platform": devices[0].platform,
        "keypoint_moseq_import": how,
        "x64": bool(jax.config.jax_enable_x64),
    }
    try:
        info["jax_environment"] = jax.print_environment_info(return_string=True)
    except Exception as error:  # noqa: BLE001 - informational only
        info["jax_environment"] = f"unavailable: {error}"
    return info


def child_main(kind: str, params_file: str, result_file: str) -> int:
    p = json.loads(Path(params_file).read_text())
    _paths()
    if p.get("simulate_image"):
        import image_sim

        image_sim.install()
    from kpms_lean import import_keypoint_moseq

    _, how = import_keypoint_moseq(lean=p.get("lean"))
    from kpms_flow.runtime import log_to

    log = log_to(None)
    if kind == "bare":
        from bare_kpms import setup_jax

        setup_jax(os.environ.get("KPMS_FLOW_JAX_CACHE", ""))
    else:
        from kpms_flow.runtime import configure_jax

        configure_jax(p.get("threads", 1))
    clocks = Clocks()
    clocks.install()
    if kind == "env":
        result = environment(p, how)
    elif kind == "fits":
        result = pipeline_fits(p, clocks, log)
    elif kind == "bare":
        result = bare_fits(p, clocks)
    elif kind == "size":
        result = size_fit(p, clocks, log)
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")
    result["keypoint_moseq_import"] = how
    if p.get("simulate_image"):
        import image_sim

        result["refused_imports"] = image_sim.refused()
    Path(result_file).write_text(json.dumps(result, indent=1, default=str))
    return 0


# ====================================================================== the parent
class Runner:
    """Starts the children under one time budget and keeps their results."""

    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.deadline = time.monotonic() + args.budget_s
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        threads = str(args.threads)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            self.env.setdefault(var, threads)
        # What kpms_flow.runtime.configure_jax sets, for the bare script's process too.
        self.env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        self.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self.env.setdefault("MPLBACKEND", "Agg")
        self.env.setdefault("TQDM_MININTERVAL", "10")
        if args.threads == 1 and "xla_cpu_multi_thread_eigen" not in self.env.get("XLA_FLAGS", ""):
            self.env["XLA_FLAGS"] = (self.env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                     " intra_op_parallelism_threads=1").strip()
        self.env["KPMS_FLOW_JAX_CACHE"] = str(work / "jax-cache")
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "scripts")] + [x for x in [self.env.get("PYTHONPATH")] if x])
        self.problems: list[str] = []

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, kind: str, params: dict, min_s: float = 20) -> dict | None:
        if self.left() < min_s:
            self.problems.append(f"{name}: skipped, {self.left():.0f} s of the budget left")
            print(f"[check] {name}: SKIPPED (time budget)", flush=True)
            return None
        params = dict(params, threads=self.args.threads, simulate_image=self.args.simulate_image,
                      lean=self.args.lean)
        if "work" in params:  # a rerun in the same --work starts its step afresh
            shutil.rmtree(params["work"], ignore_errors=True)
        for path in (params.get("labels"),):
            if path:
                Path(path).unlink(missing_ok=True)
        params_file, result_file = self.work / f"{name}.params.json", self.work / f"{name}.json"
        params_file.write_text(json.dumps(params))
        result_file.unlink(missing_ok=True)
        log_path = self.work / "logs" / f"{name}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "worker", kind,
               str(params_file), str(result_file)]
        start = time.monotonic()
        print(f"[check] {name}: running ({self.left():.0f} s of the budget left)", flush=True)
        with open(log_path, "w") as log:
            try:
                code = subprocess.run(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=max(self.left(), 1)).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        seconds = time.monotonic() - start
        if code == 0 and result_file.exists():
            result = json.loads(result_file.read_text())
            result["process_s"] = seconds
            status = result.get("status", "ok")
            print(f"[check] {name}: {status} in {seconds:.1f} s", flush=True)
            if status != "ok" and "error" in result:
                print(f"[check]   {result['error'][:400]}", flush=True)
            return result
        self.problems.append(f"{name}: {'ran past the budget' if code == 'timeout' else f'exit {code}'}")
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        print(f"[check] {name}: FAILED ({code}) after {seconds:.1f} s; end of {log_path}:", flush=True)
        print("\n".join("    " + line for line in tail), flush=True)
        return None


def label_agreement(a_path: Path, b_path: Path) -> dict:
    """Whether two labelings are the same partition of the frames (names may differ: the
    bare script reindexes syllables by frequency), and the share of frames that agree under
    the best one-to-one matching of labels."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    a, b = np.load(a_path), np.load(b_path)
    common = sorted(set(a.files) & set(b.files))
    if not common:
        return {"recordings": 0, "identical": False, "agreement": math.nan}
    x = np.concatenate([a[k] for k in common]).astype(int)
    y = np.concatenate([b[k] for k in common]).astype(int)
    table = np.zeros((x.max() + 1, y.max() + 1), dtype=np.int64)
    np.add.at(table, (x, y), 1)
    rows, cols = linear_sum_assignment(-table)
    agreement = table[rows, cols].sum() / len(x)
    return {"recordings": len(common), "frames": int(len(x)), "agreement": float(agreement),
            "identical": bool(agreement == 1.0)}


def ratio(a, b) -> float:
    try:
        return a / b if b else math.nan
    except TypeError:
        return math.nan


def build_tables(state: dict) -> dict[str, list[dict]]:
    """The four tables from the children's results."""
    tables: dict[str, list[dict]] = {"speed": [], "compile": [], "memory": [], "plan": []}
    fits, bare, probe = state.get("fits"), state.get("bare"), state.get("probe")
    for stage in ("arhmm", "full_model"):
        pipe = (fits or {}).get("stages", {}).get(stage, {})
        base = (bare or {}).get("stages", {}).get(stage, {})
        if pipe or base:
            tables["speed"].append({
                "stage": stage,
                "iterations": pipe.get("iterations", base.get("iterations")),
                "pipeline_s_per_iter": pipe.get("per_iter_s", math.nan),
                "bare_s_per_iter": base.get("per_iter_s", math.nan),
                "ratio_per_iter": ratio(pipe.get("per_iter_s"), base.get("per_iter_s")),
                "pipeline_sweep_median_s": pipe.get("median_sweep_s", math.nan),
                "bare_sweep_median_s": base.get("median_sweep_s", math.nan),
                "pipeline_stage_s": pipe.get("wall_s", math.nan),
                "bare_stage_s": base.get("wall_s", math.nan),
                "ratio_stage": ratio(pipe.get("wall_s"), base.get("wall_s")),
            })
    for run, cache, result in (("pipeline probe", "cold", probe), ("pipeline fit", "warm", fits)):
        for stage, s in (result or {}).get("stages", {}).items():
            jit = s.get("jit", {})
            tables["compile"].append({
                "stage": stage,
                "run": run,
                "cache": cache,
                "iterations": s.get("iterations"),
                "jit_s": jit.get("trace_s", 0) + jit.get("lower_s", 0) + jit.get("compile_s", 0),
                "xla_compile_or_load_s": jit.get("compile_s", math.nan),
                "cache_hits": jit.get("hits", math.nan),
                "cache_misses": jit.get("misses", math.nan),
                "first_sweep_s": s.get("first_sweep_s", math.nan),
                "median_sweep_s": s.get("median_sweep_s", math.nan),
                "stage_s": s.get("wall_s", math.nan),
            })
    for result in state.get("sizes", []):
        tables["memory"].append({
            "frames": result["frames"],
            "padded_frames": result.get("padded_frames", math.nan),
            "latent_dim": result["latent_dim"],
            "num_states": result["num_states"],
            "run": result["mode"],
            "parallel_message_passing": result.get("parallel_message_passing"),
            "mixed_map_iters": result.get("mixed_map_iters", math.nan),
            "estimate_mb": result.get("mode_estimate_mb", math.nan),
            "peak_mb": result.get("memory_peak_mb", math.nan),
            "peak_over_estimate": ratio(result.get("memory_peak_mb"), result.get("mode_estimate_mb")),
            "peak_before_fit_mb": result.get("peak_before_fit_mb", math.nan),
            "limit_mb": result.get("memory_limit_mb", math.nan),
            "median_sweep_s": result.get("median_sweep_s", math.nan),
            "status": result["status"],
            "memory_source": result.get("memory_source", ""),
        })
    for frames in sorted({r["frames"] for r in state.get("sizes", [])}):
        runs = [r for r in state["sizes"] if r["frames"] == frames]
        first = runs[0]
        parallel = [r for r in runs if r.get("parallel_message_passing")]
        tables["plan"].append({
            "frames": frames,
            "estimate_mb": first.get("estimate_mb", math.nan),
            "available_mb": first.get("available_mb", math.nan),
            "plan_parallel": first.get("plan_parallel"),
            "plan_mixed_map_iters": first.get("plan_mixed_map_iters", math.nan),
            "parallel_status": parallel[0]["status"] if parallel else "not run",
            "parallel_peak_mb": parallel[0].get("memory_peak_mb", math.nan) if parallel else math.nan,
            "verdict": verdict(first, parallel[0] if parallel else None),
        })
    return tables


def verdict(first: dict, parallel: dict | None) -> str:
    """Was parallel message passing the right choice at this size?"""
    if first.get("plan_parallel") is None or parallel is None:
        return "unknown (no parallel run)"
    fits = parallel["status"] == "ok" and parallel.get("memory_peak_mb", math.inf) <= (
        first.get("available_mb") or math.inf)
    failed = parallel["status"] == "out of memory"
    if first["plan_parallel"]:
        if fits:
            return "correct: parallel fitted"
        return "WRONG: parallel ran out of memory" if failed else f"unknown (parallel: {parallel['status']})"
    if failed:
        return "correct: parallel ran out of memory"
    if fits:
        return "too cautious: parallel fitted"
    return f"unknown (parallel: {parallel['status']})"


def fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NA"
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def write_outputs(out: Path, state: dict) -> dict[str, list[dict]]:
    tables = build_tables(state)
    md = ["# GPU check (benchmarks/gpu/check.py)", ""]
    env = state.get("env") or {}
    md += [
        f"- device: {', '.join(env.get('devices', ['unknown']))}; python {env.get('python', '?')}; "
        + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
        f"- keypoint-moseq imported: {env.get('keypoint_moseq_import', '?')} (kpms_lean.py)",
        f"- settings: {json.dumps(state.get('settings', {}))}",
    ]
    labels = state.get("labels")
    if labels:
        md.append(
            f"- syllables, pipeline vs bare on this machine: identical partition: "
            f"{labels['identical']}, frames agreeing {labels['agreement']:.4f} "
            f"({labels['recordings']} recordings, {labels.get('frames', 0)} frames)")
    for problem in state.get("problems", []):
        md.append(f"- not measured: {problem}")
    for name, rows in tables.items():
        columns = list(rows[0]) if rows else []
        lines = ["\t".join(columns)] + ["\t".join(fmt(r[c]) for c in columns) for r in rows]
        (out / f"{name}.tsv").write_text("\n".join(lines) + "\n")
        md += ["", f"## {name}", ""]
        if rows:
            md.append("| " + " | ".join(columns) + " |")
            md.append("|" + "---|" * len(columns))
            md += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in rows]
        else:
            md.append("(no rows)")
    (out / "gpu_check.md").write_text("\n".join(md) + "\n")
    (out / "check.json").write_text(json.dumps(state, indent=1, default=str))
    return tables


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "benchmarks" / "results" / "gpu"))
    parser.add_argument("--work", help="scratch folder (default: a new one under /tmp)")
    parser.add_argument("--cpu-fallback", action="store_true",
                        help="run on the CPU when no GPU is there, at CPU-sized defaults")
    parser.add_argument("--simulate-image", action="store_true",
                        help="refuse imports the GPU machine would not have (image_sim.py)")
    parser.add_argument("--lean", action="store_true", default=None,
                        help="import keypoint-moseq without analysis/calibration even where "
                        "panel is installed (default: only where it is not)")
    parser.add_argument("--demo-sessions", type=int)
    parser.add_argument("--demo-frames", type=int)
    parser.add_argument("--latent-dim", type=int, default=3)
    parser.add_argument("--num-states", type=int, default=25)
    parser.add_argument("--probe-iters", type=int)
    parser.add_argument("--arhmm-iters", type=int)
    parser.add_argument("--full-iters", type=int)
    parser.add_argument("--sizes", type=float, nargs="*", help="frames per memory run")
    parser.add_argument("--size-iters", type=int)
    parser.add_argument("--size-latent-dim", type=int, default=4,
                        help="4: the latent_dim of keypoint-moseq's published memory figure")
    parser.add_argument("--size-num-states", type=int, default=100)
    parser.add_argument("--budget-s", type=float,
                        help="time for all steps; a step still running then is stopped")
    parser.add_argument("--steps", default="speed,sizes",
                        help="speed (probe, pipeline, bare), sizes, or both (default)")
    parser.add_argument("--parallel-check", choices=["auto", "never"], default="auto",
                        help="auto: where the plan chose sequential message passing, try "
                        "parallel too; where parallel ran out of memory, try sequential")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    args.steps = set(args.steps.split(","))
    if args.steps - {"speed", "sizes"}:
        parser.error(f"--steps: unknown {sorted(args.steps - {'speed', 'sizes'})}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="kpms-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.budget_s is None:
        args.budget_s = (CPU_DEFAULTS if args.cpu_fallback else GPU_DEFAULTS)["budget_s"]
    runner = Runner(args, work)
    state: dict = {"problems": runner.problems}
    t0 = time.monotonic()

    env = runner.run("env", "env", {})
    if env is None:
        write_outputs(out, state)
        return 1
    state["env"] = env
    print(f"[check] JAX {env['versions'].get('jax')} devices: {env['devices']}; keypoint-moseq "
          f"import: {env['keypoint_moseq_import']}", flush=True)
    on_gpu = env["platform"] != "cpu"
    if not on_gpu and not args.cpu_fallback:
        print("[check] JAX sees no GPU (devices above); pass --cpu-fallback to run on the CPU",
              flush=True)
        write_outputs(out, state)
        return 2
    defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    for key, value in defaults.items():
        if key != "budget_s" and getattr(args, key) is None:
            setattr(args, key, value)
    settings = {k: getattr(args, k) for k in (
        "demo_sessions", "demo_frames", "latent_dim", "num_states", "probe_iters", "arhmm_iters",
        "full_iters", "sizes", "size_iters", "size_latent_dim", "size_num_states", "budget_s")}
    settings["steps"] = sorted(args.steps)
    settings["device"] = "gpu" if on_gpu else "cpu-fallback"
    state["settings"] = settings

    _paths()
    if args.simulate_image:
        import image_sim

        image_sim.install()
    from kpms_flow.demo import generate_demo

    demo = work / "demo"
    generate_demo(demo, n_sessions=args.demo_sessions, n_frames=args.demo_frames, n_heldout=0)
    sessions = str(demo / "sessions.tsv")
    common = {"sessions": sessions, "latent_dim": args.latent_dim, "num_states": args.num_states}

    if "speed" in args.steps:
        speed_steps(runner, args, state, common, work, out)
    if "sizes" in args.steps:
        size_steps(runner, args, state, sessions, work, out)

    state["total_s"] = time.monotonic() - t0
    write_outputs(out, state)
    print((out / "gpu_check.md").read_text(), flush=True)
    print(f"[check] tables in {out}; scratch in {work}; {state['total_s']:.0f} s", flush=True)
    incomplete = bool(runner.problems) or any(r["status"] != "ok" and r["mode"] == "plan"
                                              and r["status"] != "out of memory"
                                              for r in state.get("sizes", []))
    return 1 if incomplete else 0


def speed_steps(runner, args, state, common, work, out) -> None:
    # Cold cache: the probe fills the (new, empty) cache the later steps use.
    state["probe"] = runner.run("probe", "fits", dict(
        common, work=str(work / "probe"), arhmm_iters=args.probe_iters, full_iters=args.probe_iters))
    write_outputs(out, state)
    state["fits"] = runner.run("pipeline", "fits", dict(
        common, work=str(work / "pipeline"), arhmm_iters=args.arhmm_iters,
        full_iters=args.full_iters, labels=str(work / "pipeline_labels.npz")))
    write_outputs(out, state)
    state["bare"] = runner.run("bare", "bare", dict(
        common, work=str(work / "bare"), arhmm_iters=args.arhmm_iters,
        full_iters=args.full_iters, labels=str(work / "bare_labels.npz")))
    if state["fits"] and state["bare"]:
        state["labels"] = label_agreement(work / "pipeline_labels.npz", work / "bare_labels.npz")
    write_outputs(out, state)


def size_steps(runner, args, state, sessions, work, out) -> None:
    state["sizes"] = []
    for frames in [int(f) for f in args.sizes]:
        size = {"sessions": sessions, "frames": frames, "latent_dim": args.size_latent_dim,
                "num_states": args.size_num_states, "iters": args.size_iters}
        first = runner.run(f"size{frames}-plan", "size", dict(size, mode="plan",
                           work=str(work / f"size{frames}-plan")))
        if first is None:
            continue
        state["sizes"].append(first)
        write_outputs(out, state)
        other = None
        if first["status"] == "ok" and not first.get("parallel_message_passing"):
            other = "parallel"  # the plan chose sequential: would parallel have fitted?
        elif first["status"] == "out of memory" and first.get("parallel_message_passing"):
            other = "sequential"  # what the plan should have chosen: does it fit?
        if other and args.parallel_check == "auto":
            second = runner.run(f"size{frames}-{other}", "size", dict(
                size, mode=other, work=str(work / f"size{frames}-{other}")))
            if second is not None:
                state["sizes"].append(second)
        write_outputs(out, state)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(child_main(*sys.argv[2:5]))
    sys.exit(main())
