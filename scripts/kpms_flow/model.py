"""Model stages around the fits, through keypoint-moseq's documented API: the training
data (format_data), PCA, reindexing, extract_results and apply_model. The fits themselves
are in :mod:`kpms_flow.fitting`.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from .atomic import atomic_path, save_figure, write_table
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
            reference = "the config's bodyparts" if first_path is None else first_path
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

    from .kpms_patches import install_sweep_wrappers

    install_sweep_wrappers()
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
        from jax_moseq.utils import set_mixed_map_iters

        # Set every time (1 included): in a batch, the previous session's split must not
        # carry over (kpms_flow.apply_batches).
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
