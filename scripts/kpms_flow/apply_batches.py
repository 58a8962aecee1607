"""Applying the frozen model to several held-out sessions in one job (rule apply_batch).

A job's fixed cost (imports, loading the compiled code, the first call's tracing) is paid
once per batch instead of once per session (benchmarks/apply_batching.py). Each session is
still applied on its own (:func:`kpms_flow.model.apply_to_session`: its own format_data,
the model's seed, its own results file), so its labels do not depend on its batch-mates.
"""

from __future__ import annotations

import logging
from pathlib import Path


def apply_batches(sessions: list[str], sessions_per_job: int) -> list[list[str]]:
    """The held-out sessions in table order, cut into consecutive batches.

    Only the sessions table decides a batch, so appending a session to the table changes
    at most the last batch (or starts a new one); the others keep their sessions, and
    their jobs do not rerun.

    Parameters
    ----------
    sessions : list of str
        Sessions to apply, in the sessions table's order.
    sessions_per_job : int
        The most sessions one job applies (config key ``apply.sessions_per_job``).

    Returns
    -------
    list of list of str
        Batch ``i`` is ``sessions[i * sessions_per_job : (i + 1) * sessions_per_job]``.
    """
    if sessions_per_job < 1:
        raise ValueError(f"apply.sessions_per_job must be at least 1, not {sessions_per_job}")
    sessions = list(sessions)
    return [sessions[i : i + sessions_per_job] for i in range(0, len(sessions), sessions_per_job)]


def apply_batch(
    checkpoint,
    clean_paths: list,
    kcfg: dict,
    num_iters: int,
    out_dir,
    gpu_memory_gb=None,
    log: logging.Logger | None = None,
) -> dict[str, Path]:
    """Apply the frozen model to each session in turn, one results file per session.

    Parameters
    ----------
    checkpoint : path
        The frozen model (results/model/checkpoint.h5).
    clean_paths : list of path
        The sessions' cleaned keypoints (results/sessions/<s>/clean.h5), in batch order.
    kcfg : dict
        keypoint-moseq's config (:func:`kpms_flow.config.kpms_config`).
    num_iters : int
        Apply sweeps per session (config ``apply.num_iters``).
    out_dir : path
        The batch's folder; ``<session>.h5`` in it for each session (keypoint-moseq's
        results layout, as apply_model's ``results/apply/<session>.h5``).
    gpu_memory_gb : float, optional
        The GPU memory a job may use (runtime setting); each session gets its own plan.
    log : logging.Logger, optional

    Returns
    -------
    dict
        Session -> its results file.
    """
    from .atomic import atomic_directory
    from .keypoints import read_session
    from .model import apply_to_session
    from .resources import checkpoint_latent_dim, plan_for_job

    log = log or logging.getLogger("kpms_flow")
    latent_dim = checkpoint_latent_dim(checkpoint)
    written = {}
    with atomic_directory(out_dir) as tmp:
        for path in clean_paths:
            kp = read_session(path)
            # The same plan as the session's own apply_model job would make.
            memory = plan_for_job(kp.n_frames, latent_dim, gpu_memory_gb, log)
            apply_to_session(checkpoint, kp, kcfg, num_iters, tmp / f"{kp.session}.h5", memory)
            written[kp.session] = Path(out_dir) / f"{kp.session}.h5"
            log.info("applied the model to %s (%d frames, %d iterations)", kp.session, kp.n_frames, num_iters)
    return written
