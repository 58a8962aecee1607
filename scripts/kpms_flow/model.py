"""Model stages through keypoint-moseq's documented API: format_data, fit_pca,
init_model, fit_model, reindexing, extract_results and apply_model.

Checkpoints of running fits live in a work folder beside the declared output, tagged
with a fingerprint of what the fit depends on; a killed fit resumes from its last saved
iteration and the finished checkpoint is moved onto the output in one rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path, save_figure, write_table, write_text
from .keypoints import InputError, read_session

log = logging.getLogger("kpms_flow")


# ---------------------------------------------------------------- training data
def load_training_sessions(clean_paths: dict[str, str], bodyparts_order=None, use_bodyparts=None):
    """Read cleaned sessions with the same bodyparts, in one order.

    Parameters
    ----------
    clean_paths : dict
        Session name -> cleaned session file.
    bodyparts_order : list of str, optional
        The bodypart order (config key ``bodyparts``); default: the first session's.
    use_bodyparts : list of str, optional
        The bodyparts the model uses (config key ``use_bodyparts``). Each session must have
        them; its other points are left out (sessions may track different extra points).
        None: every session must have the same bodyparts.

    Returns
    -------
    tuple
        ``(coordinates, confidences, bodyparts, fps)``: coordinates and confidences are dicts
        keyed by session, in the order ``bodyparts``; fps per session.

    Raises
    ------
    InputError
        A session lacks a used bodypart, or (without ``use_bodyparts``) the sessions' bodyparts
        differ; the message names the file.
    """
    coordinates, confidences, fps = {}, {}, {}
    bodyparts = list(bodyparts_order) if bodyparts_order else None
    if use_bodyparts:
        bodyparts = [b for b in bodyparts if b in use_bodyparts] if bodyparts else list(use_bodyparts)
    first_path = None
    for session, path in clean_paths.items():
        kp = read_session(path)
        names = list(kp.bodyparts)
        if bodyparts is None:
            bodyparts, first_path = names, kp.source_path
        missing = [b for b in bodyparts if b not in names]
        if use_bodyparts and missing:
            raise InputError(
                f"{kp.source_path} (session {session!r}): lacks bodyparts {missing} named in "
                f"config key 'use_bodyparts'; the session has {names}"
            )
        if not use_bodyparts and (set(names) != set(bodyparts) or len(names) != len(bodyparts)):
            extra = [b for b in names if b not in bodyparts]
            reference = f"the config's bodyparts" if first_path is None else first_path
            raise InputError(
                f"{kp.source_path}: bodyparts differ from {reference}: missing {missing}, "
                f"extra {extra}. All sessions in one model must track the same bodyparts "
                "(or set config key 'use_bodyparts': other points are then left out per session)."
            )
        order = [names.index(b) for b in bodyparts]
        coordinates[session] = kp.coordinates[:, order]
        confidences[session] = kp.confidences[:, order]
        fps[session] = kp.fps
    return coordinates, confidences, bodyparts, fps


def training_fps(fps_by_session: dict[str, float | None], config_fps=None) -> float | None:
    """The one frame rate of the training sessions (None when unknown)."""
    known = {s: f for s, f in fps_by_session.items() if f is not None and np.isfinite(f)}
    values = sorted(set(known.values()))
    if len(values) > 1:
        detail = ", ".join(f"{s}={f:g}" for s, f in list(known.items())[:6])
        raise InputError(
            f"training sessions have different frame rates ({detail}); durations in ms and "
            "kappa targets need one frame rate: split the sessions table by fps or resample"
        )
    if values:
        return float(values[0])
    return None if config_fps is None else float(config_fps)


def save_training_data(path, data, metadata, bodyparts, fps, sessions) -> None:
    """Store formatted data as keypoint-moseq does in its checkpoints, plus our metadata."""
    from keypoint_moseq.io import save_hdf5
    import h5py

    with atomic_path(path) as tmp:
        save_hdf5(str(tmp), {"data": data, "metadata": metadata})
        with h5py.File(tmp, "a") as f:
            f.attrs["bodyparts"] = json.dumps(list(bodyparts))
            f.attrs["fps"] = float("nan") if fps is None else float(fps)
            f.attrs["sessions"] = json.dumps(list(sessions))


def load_training_data(path):
    """Inverse of :func:`save_training_data`: data, metadata, bodyparts, fps, sessions."""
    from keypoint_moseq.io import load_hdf5
    import h5py

    stored = load_hdf5(str(path))
    with h5py.File(path, "r") as f:
        bodyparts = json.loads(f.attrs["bodyparts"])
        fps = float(f.attrs["fps"])
        sessions = json.loads(f.attrs["sessions"])
    return stored["data"], tuple(stored["metadata"]), bodyparts, (
        None if np.isnan(fps) else fps
    ), sessions


def read_training_attrs(path):
    """Bodyparts, fps and sessions of a training data file, without loading the data."""
    import h5py

    with h5py.File(path, "r") as f:
        fps = float(f.attrs["fps"])
        return (
            json.loads(f.attrs["bodyparts"]),
            None if np.isnan(fps) else fps,
            json.loads(f.attrs["sessions"]),
        )


# ---------------------------------------------------------------- PCA
def choose_latent_dim(pca, latent_dim, variance_threshold: float) -> tuple[int, float]:
    """Fixed or "auto" latent_dim and the variance it explains."""
    cumulative = np.cumsum(pca.explained_variance_ratio_)
    n_components = len(cumulative)
    if latent_dim == "auto":
        # Same rule as keypoint-moseq's print_dims_to_explain_variance.
        above = np.nonzero(cumulative > variance_threshold)[0]
        chosen = int(above.min() + 1) if len(above) else n_components
    else:
        chosen = int(latent_dim)
        if chosen > n_components:
            raise InputError(
                f"config key 'latent_dim' is {chosen} but the data allow at most "
                f"{n_components} principal components (bodyparts x dims minus the "
                "centring and rotation); lower latent_dim or use 'auto'"
            )
    return chosen, float(cumulative[chosen - 1])


def plot_pca(pca, kcfg, scree_path, pcs_path, dpi=100) -> None:
    import keypoint_moseq as kpms
    import matplotlib.pyplot as plt

    save_figure(scree_path, kpms.plot_scree(pca, savefig=False), dpi=dpi)
    kpms.plot_pcs(pca, savefig=False, interactive=False, **kcfg)
    save_figure(pcs_path, plt.gcf(), dpi=dpi)


# ---------------------------------------------------------------- fitting
def fingerprint(*parts) -> str:
    """A short hash of what a fit depends on (inputs' identity, settings)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, (str, os.PathLike)) and Path(part).exists():
            stat = Path(part).stat()
            part = f"{Path(part).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def saved_iterations(checkpoint_path) -> list[int]:
    import h5py

    try:
        with h5py.File(checkpoint_path, "r") as f:
            return sorted(int(k) for k in f["model_snapshots"])
    except (OSError, KeyError):
        # A checkpoint cut short by a kill is not trusted.
        return []


@dataclass
class FitSpec:
    """One fitting stage: where it works, what it runs, and what it depends on."""

    work_dir: Path
    output: Path
    num_iters: int  # the last iteration (keypoint-moseq runs start_iter..num_iters)
    ar_only: bool
    fingerprint: str
    save_every_n_iters: int = 25
    jitter: float = 1e-3
    fps: float | None = None
    start_from: Path | None = None  # a finished checkpoint to continue (a chosen probe)
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


# Files of a fit's work folder besides keypoint-moseq's checkpoint.h5 (written atomically):
# the snapshots whose save finished, and the NaN retries made so far.
_SAVED = "saved_iterations.json"
_RETRIES = "nan_retries.json"


@contextlib.contextmanager
def _recorded_saves(work: Path):
    """Record each snapshot keypoint-moseq saves into ``work/checkpoint.h5`` once written.

    fit_model appends snapshots to the HDF5 file in place; a kill during that write must not
    leave a snapshot that a rerun trusts. Only snapshots listed in ``saved_iterations.json``
    (written after each save returned) are resumed from. The progress figure is saved
    atomically too.
    """
    from keypoint_moseq import fitting

    checkpoint = str(work / "checkpoint.h5")
    save_hdf5, plot_progress = fitting.save_hdf5, fitting.plot_progress

    def recording_save(filepath, save_dict, datapath=None, *args, **kwargs):
        save_hdf5(filepath, save_dict, datapath, *args, **kwargs)
        if os.path.abspath(filepath) != os.path.abspath(checkpoint):
            return
        if datapath is None:
            new = [int(k) for k in save_dict.get("model_snapshots", {})]
        elif datapath.startswith("model_snapshots/"):
            new = [int(datapath.split("/")[1])]
        else:
            new = []
        _record_saved(work, new)

    def atomic_progress_plot(*args, savefig=True, **kwargs):
        import matplotlib.pyplot as plt

        fig, axs = plot_progress(*args, savefig=False, **kwargs)
        if savefig:
            save_figure(work / "fitting_progress.pdf", fig)
        else:
            plt.close(fig)
        return fig, axs

    fitting.save_hdf5, fitting.plot_progress = recording_save, atomic_progress_plot
    try:
        yield
    finally:
        fitting.save_hdf5, fitting.plot_progress = save_hdf5, plot_progress


def _record_saved(work: Path, iterations) -> None:
    write_text(work / _SAVED, json.dumps(sorted(set(recorded_iterations(work)) | set(iterations))))


def recorded_iterations(work) -> list[int]:
    """Snapshots of a work folder's checkpoint whose save finished."""
    try:
        return sorted(int(i) for i in json.loads((Path(work) / _SAVED).read_text()))
    except (OSError, ValueError):
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
            log.warning("snapshot %d of %s cannot be read (%s); trying the one before", iteration, checkpoint, error)
            continue
        # The first snapshot is the state before its sweep (fit_model saves the starting
        # model); later ones are states after theirs, so resume at the next iteration.
        start_iter = int(last) if i == 0 else int(last) + 1
        return model, start_iter, trusted[: i + 1]
    return None, None, []


def run_fit(spec: FitSpec, data, metadata, make_initial_model) -> dict:
    """Fit (or resume) a stage and publish its checkpoint.

    ``make_initial_model()`` returns ``(model, start_iter)`` for a fresh start. Resuming
    starts at the saved iteration + 1: starting at the saved iteration, as the
    keypoint-moseq docs show, replays one sweep (keypoint-moseq-facts.md). A fit that
    stops on NaNs continues from its last saved iteration with a larger jitter
    (``spec.nan_retries`` times, then :class:`NumericalError`); the jitter in use is kept
    in the work folder, so a killed retry resumes with it.
    """
    import keypoint_moseq as kpms

    from .watchdog import beat, install_heartbeat

    install_heartbeat()
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
        log.warning("discarding %s: no snapshot in it was saved completely (killed during a write?)", checkpoint)
        checkpoint.unlink()
    if spec.start_from is not None and not checkpoint.exists():
        # Continue a copy: the probe's own checkpoint stays as it was fitted.
        with atomic_path(checkpoint) as tmp:
            shutil.copyfile(spec.start_from, tmp)
        _record_saved(work, saved_iterations(checkpoint))
        trusted = trusted_iterations(work)

    retries = json.loads((work / _RETRIES).read_text()) if (work / _RETRIES).exists() else []
    jitter = retries[-1]["jitter"] if retries else spec.jitter
    model, start_iter, trusted = _resume_point(checkpoint, trusted) if trusted else (None, None, [])
    if model is not None:
        _drop_snapshots(checkpoint, trusted)
        log.info("resuming %s at iteration %d (saved: %s)", checkpoint, start_iter, trusted)
    else:
        if checkpoint.exists():
            checkpoint.unlink()
        (work / _SAVED).unlink(missing_ok=True)
        model, start_iter = make_initial_model()
        log.info("starting %s at iteration %d", checkpoint, start_iter)
    beat()

    with _recorded_saves(work):
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
                        str(checkpoint), model, f"model_snapshots/{spec.num_iters}", exist_ok=True
                    )
            last_saved = trusted_iterations(work)[-1]
            if last_saved == spec.num_iters:
                break
            # keypoint-moseq stopped on NaNs (a warning above in the log, no exception).
            if spec.ar_only or len(retries) >= spec.nan_retries:
                raise NumericalError(_nan_message(spec, work, last_saved, retries))
            jitter = float(jitter) * spec.jitter_factor
            retries.append({"from_iteration": last_saved, "jitter": jitter})
            write_text(work / _RETRIES, json.dumps(retries))
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


def init_arhmm(data, pca, kcfg, kappa: float, seed: int, fps: float | None):
    """A fresh model at the AR-HMM kappa (keypoint-moseq's notebook sequence)."""
    import keypoint_moseq as kpms

    kcfg = dict(kcfg, trans_hypparams=dict(kcfg["trans_hypparams"], kappa=float(kappa)))
    if kcfg["cen_hypparams"].get("sigmasq_loc") is None:
        filter_size = int(round(fps)) if fps else 30
        kcfg["cen_hypparams"] = dict(
            kcfg["cen_hypparams"],
            sigmasq_loc=float(kpms.estimate_sigmasq_loc(data["Y"], data["mask"], filter_size)),
        )
    return kpms.init_model(data, pca=pca, seed=int(seed), **kcfg)


def continue_with_kappa(checkpoint_path, kappa: float):
    """Last snapshot of a checkpoint with a new kappa, and the iteration to continue at."""
    import keypoint_moseq as kpms

    model, _, _, iteration = kpms.load_checkpoint(path=str(checkpoint_path))
    return kpms.update_hypparams(model, kappa=float(kappa)), int(iteration)


# ---------------------------------------------------------------- final model
def reindexed_copy(fitted_checkpoint, output, index_table) -> np.ndarray:
    """Write the last snapshot of a fit, syllables reindexed by frequency, to ``output``.

    keypoint-moseq reindexes in place and a second call reshuffles ties, so it runs
    exactly once, on a fresh copy; the fitted checkpoint stays as fitted.
    """
    import keypoint_moseq as kpms
    from keypoint_moseq.io import save_hdf5

    model, data, metadata, iteration = kpms.load_checkpoint(path=str(fitted_checkpoint))
    with atomic_path(output) as tmp:
        save_hdf5(
            str(tmp),
            {"model_snapshots": {str(iteration): model}, "metadata": metadata, "data": data},
        )
        index = np.asarray(kpms.reindex_syllables_in_checkpoint(path=str(tmp)))
    write_table(
        index_table,
        pd.DataFrame({"syllable": np.arange(len(index)), "fitted_state": index}),
    )
    return index


def extract(final_checkpoint, results_path) -> dict:
    import keypoint_moseq as kpms

    model, _, metadata, _ = kpms.load_checkpoint(path=str(final_checkpoint))
    with atomic_path(results_path) as tmp:
        return kpms.extract_results(model, metadata, path=str(tmp))


def apply_to_session(
    final_checkpoint, kp, kcfg, num_iters: int, results_path, memory_plan=None
) -> dict:
    """Syllables for one session from the frozen model, on its own (seeded as the model).

    keypoint-moseq splits random keys over the batch axis, so applying each session alone
    keeps its labels independent of which other sessions exist.
    """
    import keypoint_moseq as kpms

    from .watchdog import install_heartbeat

    install_heartbeat()
    model, _, _, _ = kpms.load_checkpoint(path=str(final_checkpoint))
    # The frozen model's own hyperparameters (latent_dim, kappa...) rule, not the config's.
    kcfg = dict(kcfg, **model["hypparams"])
    bodyparts = kcfg["bodyparts"]
    if set(kp.bodyparts) != set(bodyparts):
        raise InputError(
            f"{kp.source_path}: bodyparts {kp.bodyparts} differ from the model's {bodyparts}"
        )
    order = [list(kp.bodyparts).index(b) for b in bodyparts]
    data, metadata = kpms.format_data(
        {kp.session: kp.coordinates[:, order]}, {kp.session: kp.confidences[:, order]}, **kcfg
    )
    parallel_message_passing = None
    if memory_plan is not None:
        parallel_message_passing = memory_plan.parallel_message_passing
        if memory_plan.mixed_map_iters > 1:
            from jax_moseq.utils import set_mixed_map_iters

            set_mixed_map_iters(memory_plan.mixed_map_iters)
    with atomic_path(results_path) as tmp:
        return kpms.apply_model(
            model,
            data,
            metadata,
            num_iters=num_iters,
            results_path=str(tmp),
            parallel_message_passing=parallel_message_passing,
            **kcfg,
        )
