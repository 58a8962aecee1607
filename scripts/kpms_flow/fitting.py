"""The fitting engine: every rule that runs keypoint-moseq's ``fit_model`` goes through it.

:func:`fit_job` is the one entry point of the fitting rules (``probe_kappa``,
``fit_arhmm``, ``fit_full_model``): it puts the job under the watchdog, sets JAX up,
reads the declared inputs, plans GPU memory and runs :func:`run_fit`.

A fit works in a folder beside its declared output, tagged with a fingerprint of what it
depends on. A killed fit resumes from its last completely saved snapshot at the next
iteration, which reproduces the uninterrupted fit bit for bit (keypoint-moseq-facts.md);
a fit that stops on NaNs continues with a larger jitter; the finished checkpoint is moved
onto the output in one rename. The patches this relies on are in
:mod:`kpms_flow.kpms_patches`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .kpms_patches import record_saved, recorded_iterations, recorded_saves

log = logging.getLogger("kpms_flow")

# The NaN retries made so far, in the work folder (a killed retry resumes with its jitter).
NAN_RETRIES = "nan_retries.json"


# ---------------------------------------------------------------- the specification
@dataclass
class FitSpec:
    """One fit: where it works, what it runs, and what it depends on."""

    work_dir: Path
    output: Path
    num_iters: int  # the last iteration (keypoint-moseq runs start_iter..num_iters)
    ar_only: bool
    fingerprint: str
    save_every_n_iters: int = 25
    jitter: float = 1e-3
    fps: float | None = None
    start_from: Path | None = None  # a finished checkpoint to continue (a chosen probe)
    location_aware: bool = False  # keypoint-moseq's allo_keypoint_slds model
    # GPU memory plan (kpms_flow.resources.plan_fit_memory): None keeps keypoint-moseq's
    # default (True on GPU, False on CPU); mixed_map_iters splits each sweep's batch.
    parallel_message_passing: bool | None = None
    mixed_map_iters: int = 1
    # NaNs stop a keypoint-moseq fit with a warning only: continue from the last saved
    # iteration with jitter x jitter_factor, at most nan_retries times (config 'nan_retry').
    nan_retries: int = 0
    jitter_factor: float = 10.0

    def use_memory_plan(self, plan) -> None:
        """Take a :class:`kpms_flow.resources.MemoryPlan`'s settings for this fit."""
        self.parallel_message_passing = plan.parallel_message_passing
        self.mixed_map_iters = plan.mixed_map_iters


def nan_retry_settings(config) -> dict:
    """FitSpec's NaN-retry fields from the config's ``nan_retry`` section."""
    section = config.get("nan_retry") or {}
    return {
        "nan_retries": int(section.get("max_retries", 0)),
        "jitter_factor": float(section.get("jitter_factor", 10.0)),
    }


class NumericalError(RuntimeError):
    """A fit stopped on NaNs, also after the configured retries with larger jitter."""


def fingerprint(*parts) -> str:
    """A short hash of what a fit depends on (inputs' identity, settings)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, (str, os.PathLike)) and Path(part).exists():
            stat = Path(part).stat()
            part = f"{Path(part).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- snapshots
def saved_iterations(checkpoint_path) -> list[int]:
    """Iterations of the snapshots present in a keypoint-moseq checkpoint."""
    import h5py

    try:
        with h5py.File(checkpoint_path, "r") as f:
            return sorted(int(k) for k in f["model_snapshots"])
    except (OSError, KeyError):
        # A checkpoint cut short by a kill is not trusted.
        return []


def trusted_iterations(work) -> list[int]:
    """Snapshots a resumed fit may start from: saved completely and present in the file."""
    work = Path(work)
    checkpoint = work / "checkpoint.h5"
    if not checkpoint.exists():
        return []
    present = set(saved_iterations(checkpoint))
    return [i for i in recorded_iterations(work) if i in present]


def _drop_snapshots(checkpoint: Path, keep) -> None:
    """Delete snapshots not in ``keep`` (half-written ones), so keypoint-moseq can save them."""
    import h5py

    drop = [i for i in saved_iterations(checkpoint) if i not in keep]
    if not drop:
        return
    log.warning("dropping snapshots %s of %s: their saves never finished", drop, checkpoint)
    with h5py.File(checkpoint, "a") as f:
        for iteration in drop:
            del f["model_snapshots"][str(iteration)]


def _resume_point(checkpoint: Path, trusted: list[int]):
    """The model at the last snapshot that loads, and the iteration to continue at."""
    import keypoint_moseq as kpms

    for i, iteration in reversed(list(enumerate(trusted))):
        try:
            model, _, _, last = kpms.load_checkpoint(path=str(checkpoint), iteration=iteration)
        except Exception as error:  # noqa: BLE001 - any unreadable snapshot is skipped
            log.warning(
                "snapshot %d of %s cannot be read (%s); trying the one before",
                iteration,
                checkpoint,
                error,
            )
            continue
        # The first snapshot is the state before its sweep (fit_model saves the starting
        # model); later ones are states after theirs, so resume at the next iteration.
        start_iter = int(last) if i == 0 else int(last) + 1
        return model, start_iter, trusted[: i + 1]
    return None, None, []


# ---------------------------------------------------------------- the engine
def run_fit(spec: FitSpec, data, metadata, make_initial_model) -> dict:
    """Fit (or resume) and publish the checkpoint; return the final model.

    Parameters
    ----------
    spec : FitSpec
        The fit.
    data, metadata : dict, tuple
        keypoint-moseq's formatted training data.
    make_initial_model : callable or None
        Returns ``(model, start_iter)`` for a fresh start; None when ``spec.start_from``
        gives the starting checkpoint.

    Notes
    -----
    Resuming starts at the saved iteration + 1: starting at the saved iteration, as the
    keypoint-moseq docs show, replays one sweep. A fit that stops on NaNs continues from
    its last saved iteration with a larger jitter (``spec.nan_retries`` times, then
    :class:`NumericalError`).
    """
    import keypoint_moseq as kpms

    from .atomic import copy_file, write_text
    from .kpms_patches import install_sweep_wrappers
    from .watchdog import beat

    install_sweep_wrappers()
    if spec.mixed_map_iters > 1:
        # Must be set before anything is compiled (keypoint-moseq FAQ).
        from jax_moseq.utils import set_mixed_map_iters

        set_mixed_map_iters(spec.mixed_map_iters)
    work = Path(spec.work_dir)
    stamp = work / "fingerprint.txt"
    checkpoint = work / "checkpoint.h5"
    if work.exists() and (not stamp.exists() or stamp.read_text() != spec.fingerprint):
        log.info("discarding %s: it belongs to other inputs or settings", work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_text(stamp, spec.fingerprint)
    trusted = trusted_iterations(work)
    if checkpoint.exists() and not trusted:
        log.warning(
            "discarding %s: no snapshot in it was saved completely (killed during a write?)",
            checkpoint,
        )
        checkpoint.unlink()
    if spec.start_from is not None and not checkpoint.exists():
        # Continue a copy: the probe's own checkpoint stays as it was fitted.
        copy_file(spec.start_from, checkpoint)
        record_saved(work, saved_iterations(checkpoint))
        trusted = trusted_iterations(work)

    retries_file = work / NAN_RETRIES
    retries = json.loads(retries_file.read_text()) if retries_file.exists() else []
    jitter = retries[-1]["jitter"] if retries else spec.jitter
    model, start_iter, trusted = (
        _resume_point(checkpoint, trusted) if trusted else (None, None, [])
    )
    if model is not None:
        _drop_snapshots(checkpoint, trusted)
        log.info("resuming %s at iteration %d (saved: %s)", checkpoint, start_iter, trusted)
    else:
        if checkpoint.exists():
            checkpoint.unlink()
        (work / "saved_iterations.json").unlink(missing_ok=True)
        model, start_iter = make_initial_model()
        log.info("starting %s at iteration %d", checkpoint, start_iter)
    beat()

    with recorded_saves(work):
        while True:
            if start_iter <= spec.num_iters:
                seed_before = np.asarray(model["seed"]).copy()
                model, _ = kpms.fit_model(
                    model,
                    data,
                    metadata,
                    project_dir=str(work.parent),
                    model_name=work.name,
                    num_iters=spec.num_iters,
                    start_iter=start_iter,
                    ar_only=spec.ar_only,
                    location_aware=spec.location_aware,
                    jitter=jitter,
                    save_every_n_iters=spec.save_every_n_iters,
                    generate_progress_plots=True,
                    fps=spec.fps,
                    parallel_message_passing=spec.parallel_message_passing,
                )
                last_saved = trusted_iterations(work)[-1]
                if (
                    last_saved < spec.num_iters
                    and start_iter == spec.num_iters
                    and not np.array_equal(np.asarray(model["seed"]), seed_before)
                ):
                    # keypoint-moseq never saves the sweep at start_iter: with one sweep
                    # left (a probe continued by one iteration), save it here. The key
                    # advances each sweep, so an unchanged key means the sweep stopped on
                    # NaNs and nothing is saved.
                    from keypoint_moseq import fitting

                    fitting.save_hdf5(
                        str(checkpoint),
                        model,
                        f"model_snapshots/{spec.num_iters}",
                        exist_ok=True,
                    )
            last_saved = trusted_iterations(work)[-1]
            if last_saved == spec.num_iters:
                break
            # keypoint-moseq stopped on NaNs (a warning above in the log, no exception).
            if spec.ar_only or len(retries) >= spec.nan_retries:
                raise NumericalError(_nan_message(spec, work, last_saved, retries))
            jitter = float(jitter) * spec.jitter_factor
            retries.append({"from_iteration": last_saved, "jitter": jitter})
            write_text(retries_file, json.dumps(retries))
            model, start_iter, trusted = _resume_point(checkpoint, trusted_iterations(work))
            _drop_snapshots(checkpoint, trusted)
            log.warning(
                "NaNs after iteration %d: retry %d of %d from iteration %d with jitter %g",
                last_saved,
                len(retries),
                spec.nan_retries,
                start_iter,
                jitter,
            )
    os.replace(checkpoint, spec.output)
    plots = work / "plots"
    if plots.exists():
        target = Path(spec.output).parent / "progress"
        shutil.rmtree(target, ignore_errors=True)
        os.replace(plots, target)
    shutil.rmtree(work)
    return model


def _nan_message(spec: FitSpec, work: Path, last_saved: int, retries) -> str:
    tried = ", ".join(f"{r['jitter']:g}" for r in retries)
    if spec.ar_only:
        advice = "jitter does not enter AR-HMM sweeps, so it was not retried"
    else:
        advice = (
            f"retried {len(retries)} time(s) with jitter {tried} (config key 'nan_retry')"
            if retries
            else "no retries configured (config key 'nan_retry.max_retries')"
        )
    return (
        f"fit in {work} stopped on NaNs after iteration {last_saved} of {spec.num_iters} "
        f"(keypoint-moseq stops with only a warning, see the log above); {advice}. Check the "
        "QA plots for bad keypoints, and the hyperparameters (ar_hypparams, obs_hypparams, "
        "cen_hypparams); see docs/troubleshooting.md"
    )


# ---------------------------------------------------------------- starting models
def init_arhmm(data, pca, kcfg, kappa: float, seed: int, fps: float | None):
    """A fresh model at the AR-HMM kappa (keypoint-moseq's notebook sequence)."""
    import keypoint_moseq as kpms

    kcfg = dict(kcfg, trans_hypparams=dict(kcfg["trans_hypparams"], kappa=float(kappa)))
    if kcfg["cen_hypparams"].get("sigmasq_loc") is None:
        # keypoint-moseq's notebook smooths the centroid over about one second.
        filter_size = int(round(fps)) if fps else 30
        kcfg["cen_hypparams"] = dict(
            kcfg["cen_hypparams"],
            sigmasq_loc=float(kpms.estimate_sigmasq_loc(data["Y"], data["mask"], filter_size)),
        )
    seed = int(seed)
    if kcfg.get("location_aware"):
        # keypoint-moseq 0.8.1's location-aware init takes only a PRNG key ("invalid PRNG
        # key data" for an int); the same key an int seed makes in the standard model.
        import jax

        seed = jax.random.PRNGKey(seed)
    return kpms.init_model(data, pca=pca, seed=seed, **kcfg)


def continue_with_kappa(checkpoint_path, kappa: float):
    """Last snapshot of a checkpoint with a new kappa, and the iteration to continue at."""
    import keypoint_moseq as kpms

    model, _, _, iteration = kpms.load_checkpoint(path=str(checkpoint_path))
    return kpms.update_hypparams(model, kappa=float(kappa)), int(iteration)


def fit_metrics(model, data, fps: float | None) -> dict:
    """Median bout duration, syllables used and kappa of a fitted model on its data."""
    from jax_moseq.utils import get_durations, get_frequencies

    z = np.asarray(model["states"]["z"])
    mask = np.asarray(data["mask"])
    median = float(np.median(get_durations(z, mask)))
    frequencies = np.asarray(get_frequencies(z, mask, runlength=False))
    return {
        "kappa": float(model["hypparams"]["trans_hypparams"]["kappa"]),
        "median_duration_frames": median,
        "median_duration_ms": float("nan") if not fps else 1000.0 * median / fps,
        # keypoint-moseq's plots ignore syllables under 0.5 % of frames.
        "syllables": int((frequencies > 0.005).sum()),
    }


# ---------------------------------------------------------------- the rules' entry point
FIT_KINDS = ("probe", "arhmm", "full_model")


def fit_job(smk, kind: str) -> None:
    """Run one fitting rule's job from its Snakemake object.

    Parameters
    ----------
    smk : snakemake.script.Snakemake
        The rule script's ``snakemake`` object. Inputs by name: ``data`` always;
        ``decision`` (probes); ``pca`` and ``latent_dim`` (fresh AR-HMMs); ``start``
        (full-model probes: restart 0's AR-HMM); ``chosen_probe`` (restart 0's final fits
        after a search); ``arhmm`` (other full-model fits: the restart's AR-HMM);
        ``searched_kappa`` (a fresh restart's kappa: the search's chosen.tsv). Outputs: ``checkpoint``
        and ``table`` (the fit's one-row metrics).
    kind : {"probe", "arhmm", "full_model"}
        Which fit.
    """
    from .runtime import start_jax_job

    if kind not in FIT_KINDS:
        raise ValueError(f"fit kind must be one of {FIT_KINDS}, got {kind!r}")
    _, settings = start_jax_job(smk)
    _fit(smk, kind, settings)


def _fit(smk, kind: str, settings) -> None:
    import joblib
    import pandas as pd

    from .atomic import write_table
    from .config import kpms_config
    from .model import load_training_data
    from .resources import checkpoint_latent_dim, plan_for_job
    from .search import probe_plan, read_decision

    inp, out, p = smk.input, smk.output, smk.params
    data, metadata, bodyparts, fps, _ = load_training_data(inp.data)
    stage = kind if kind != "probe" else smk.wildcards.stage
    ar_only = stage == "arhmm"
    first_iter = 0
    kappa = None
    start_from = Path(inp.chosen_probe) if "chosen_probe" in inp.keys() else None
    start = None
    source = None
    if kind == "probe":
        decision, _, _ = read_decision(inp.decision)
        kappa, num_iters, source = probe_plan(decision, int(smk.wildcards.probe), p.num_iters)
        if source is not None:
            # A probe confirmed at the stage's length continues a copy of an earlier probe.
            start_from = Path(inp.source)
    else:
        kappa = p.kappa  # None after a search: the chosen probe or chosen.tsv carries it
        if "searched_kappa" in inp.keys():
            kappa = float(pd.read_csv(inp.searched_kappa, sep="\t")["kappa"].iloc[0])
        num_iters = p.num_iters
    if start_from is not None:
        latent_dim = checkpoint_latent_dim(start_from)
        if not ar_only:
            # The probe started at the AR-HMM's last iteration and ran its own sweeps.
            first_iter = saved_iterations(start_from)[0]
    elif ar_only:
        latent_dim = int(Path(inp.latent_dim).read_text())
        kcfg = kpms_config(p.model, bodyparts, latent_dim=latent_dim)
        pca_path = inp.pca

        def start():
            return init_arhmm(data, joblib.load(pca_path), kcfg, kappa, p.seed, fps), 0

    else:
        continued = inp.start if kind == "probe" else inp.arhmm
        latent_dim = checkpoint_latent_dim(continued)
        # keypoint-moseq's notebook continues at the AR-HMM's last iteration.
        first_iter = saved_iterations(continued)[-1]

        def start():
            return continue_with_kappa(continued, kappa)

    spec = FitSpec(
        work_dir=Path(out.checkpoint).parent / "work",
        output=Path(out.checkpoint),
        num_iters=first_iter + num_iters,
        ar_only=ar_only,
        fingerprint=fingerprint(*inp, dict(p.items()), kappa),
        save_every_n_iters=p.save_every_n_iters,
        jitter=p.jitter,
        fps=fps,
        start_from=start_from,
        location_aware=bool(p.model.get("location_aware", False)),
        **nan_retry_settings(smk.config),
    )
    spec.use_memory_plan(plan_for_job(data["mask"].size, latent_dim, settings.gpu_memory_gb, log))
    if kind == "probe":
        log.info(
            "%s probe round %s #%s: kappa %.4g, %d iterations%s",
            stage,
            smk.wildcards.round,
            smk.wildcards.probe,
            kappa,
            num_iters,
            f", continuing probe round {source[0]} #{source[1]}" if source else "",
        )
    elif start_from is not None:
        log.info("%s: continuing the chosen probe to iteration %d", stage, spec.num_iters)
    else:
        log.info(
            "%s: kappa %g, iterations %d..%d, latent_dim %d",
            stage,
            kappa,
            first_iter,
            spec.num_iters,
            latent_dim,
        )
    model = run_fit(spec, data, metadata, start)
    metrics = fit_metrics(model, data, fps)
    row = {"stage": stage}
    if kind == "probe":
        row.update(round=int(smk.wildcards.round), probe=int(smk.wildcards.probe))
    row.update(
        kappa=metrics["kappa"],
        log10_kappa=math.log10(metrics["kappa"]),
        median_duration_frames=metrics["median_duration_frames"],
        median_duration_ms=metrics["median_duration_ms"],
        syllables=metrics["syllables"],
        iterations=num_iters,
    )
    if kind == "probe":
        row.update(source_round=source[0] if source else -1, source_probe=source[1] if source else -1)
    write_table(out.table, pd.DataFrame([row]))
    log.info("result %s", row)
