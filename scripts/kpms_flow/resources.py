"""Job resources planned from the data: memory, run time, and the GPU memory plan of a fit.

The constants are measurements or published figures, not guesses:

- Host memory: a JAX rule holds ~0.6 GB of imports and compiled code before any data
  (max_rss of extract_results on the 9,000-frame demo: 550 MB); fits on this CPU peaked at
  1.7 GB on 7,200 frames (results/benchmarks/fit_full_model.tsv). We request 2 GB plus
  10 KB per padded frame and latent dimension pair (see ``HOST_KB_PER_FRAME``).
- GPU memory of the full model: keypoint-moseq's FAQ gives "~3MB GPU memory for each 100
  frames" at 4 latent dimensions, growing linearly with frames x latent dimensions;
  ``parallel_message_passing=False`` needs 4-6x less, and jax-moseq's
  ``set_mixed_map_iters(n)`` about n-fold less (both slower by the same factors).
- Run time: a full-model sweep took 50 microseconds per frame on this 2-core CPU (demo,
  7,200 frames, after the sweep re-typing fix); GPUs are faster, so the CPU rate with a
  safety factor is a generous but finite time limit. Each retry (``attempt``) gets more.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

BASE_MEM_MB = 2000
HOST_KB_PER_FRAME = 10.0  # host RAM per padded frame (data, model state, results)
GPU_MB_PER_100_FRAMES_AT_4_DIMS = 3.0  # keypoint-moseq FAQ
SEQUENTIAL_MESSAGE_PASSING_SAVING = 4.0  # the FAQ says 4-6x: take the cautious end
GPU_MEMORY_USABLE_FRACTION = 0.9  # leave room for the CUDA context and XLA's scratch
SECONDS_PER_FRAME_ITER = 50e-6  # measured CPU full-model sweep rate (see above)
RUNTIME_SAFETY = 3.0
BASE_RUNTIME_MIN = 15  # start-up, imports, XLA compilation without a warm cache
# Light jobs: loading peaked at 559-575 MB whatever the frames, outlier removal at 680-819 MB
# (benchmarks/README.md, peak memory); pose tables decompress and get copied while cleaning:
# 20 copies is generous.
LIGHT_BASE_MEM_MB = 1000
LIGHT_INPUT_COPIES = 20
# Before PCA has chosen latent_dim (a dry run), plan with keypoint-moseq's default.
UNKNOWN_LATENT_DIM = 10


# Resource functions run while Snakemake builds the DAG: a missing, unfinished or foreign
# file must give "unknown" (the base request), never an exception that stops a dry run.
_UNREADABLE = (OSError, KeyError, ValueError, TypeError)  # TypeError: no such input (None)


def padded_frames(data_path) -> int | None:
    """Frames of a training data file as keypoint-moseq holds them (segments x length);
    None when the file does not exist yet or cannot be read."""
    import h5py

    try:
        with h5py.File(Path(data_path), "r") as f:
            return int(math.prod(f["data/mask"].shape))
    except _UNREADABLE:
        return None


def session_frames(clean_path) -> int | None:
    """Frames of one normalised session file, read from its shape only (None: unknown)."""
    import h5py

    try:
        with h5py.File(Path(clean_path), "r") as f:
            return int(f["coordinates"].shape[0])
    except _UNREADABLE:
        return None


def planned_latent_dim(latent_dim_path) -> int:
    """latent_dim chosen by PCA (its file), or keypoint-moseq's default before it exists."""
    try:
        return int(Path(latent_dim_path).read_text())
    except _UNREADABLE:
        return UNKNOWN_LATENT_DIM


def checkpoint_latent_dim_or_none(checkpoint_path) -> int:
    """:func:`checkpoint_latent_dim`, or the planning default when it cannot be read."""
    try:
        return checkpoint_latent_dim(checkpoint_path)
    except _UNREADABLE:
        return UNKNOWN_LATENT_DIM


def host_mem_mb(frames: int | None, latent_dim: int = UNKNOWN_LATENT_DIM, attempt: int = 1) -> int:
    """Host memory for a JAX job over ``frames`` frames; unknown frames get the base."""
    frames = frames or 0
    per_frame_kb = HOST_KB_PER_FRAME * max(latent_dim, 4) / 4
    return int(math.ceil((BASE_MEM_MB + frames * per_frame_kb / 1024) * attempt))


def fit_runtime_min(frames: int | None, iterations: int, attempt: int = 1) -> int:
    """Minutes to request for ``iterations`` sweeps over ``frames`` frames."""
    sweeps = (frames or 0) * max(int(iterations), 1) * SECONDS_PER_FRAME_ITER
    return int(math.ceil((BASE_RUNTIME_MIN + RUNTIME_SAFETY * sweeps / 60) * attempt))


def input_size_mb(paths) -> float:
    """Total size of ``paths`` in MiB, as Snakemake's ``input.size_mb``, by ``os.stat``.

    ``input.size_mb`` runs an asyncio event loop per call: 3 ms a job, a tenth of a fresh
    1,000-session dry run (benchmarks/README.md). A missing file raises FileNotFoundError
    naming it, which Snakemake takes as "not known yet" and asks again when the job is ready.
    """
    return sum(os.stat(path).st_size for path in paths) / 2**20


def light_mem_mb(input_mb: float, attempt: int = 1) -> int:
    """Loading, QA, plots: imports plus a few copies of the input in memory."""
    return int(math.ceil((LIGHT_BASE_MEM_MB + LIGHT_INPUT_COPIES * input_mb) * attempt))


def full_model_gpu_mb(frames: int, latent_dim: int) -> float:
    """keypoint-moseq's published estimate of a full-model fit's GPU memory."""
    return GPU_MB_PER_100_FRAMES_AT_4_DIMS * frames / 100 * latent_dim / 4


@dataclass(frozen=True)
class MemoryPlan:
    """How a fit runs in the memory it has (FitSpec takes the two settings)."""

    parallel_message_passing: bool | None
    mixed_map_iters: int
    estimated_mb: float
    available_mb: float | None
    reason: str

    def describe(self) -> str:
        available = "unknown" if self.available_mb is None else f"{self.available_mb:.0f} MB"
        return (
            f"GPU memory plan: estimated {self.estimated_mb:.0f} MB for the full model, "
            f"available {available}; parallel_message_passing={self.parallel_message_passing}, "
            f"mixed_map_iters={self.mixed_map_iters} ({self.reason})"
        )


def plan_fit_memory(
    frames: int, latent_dim: int, gpu_memory_mb: float | None, on_gpu: bool
) -> MemoryPlan:
    """Choose parallel message passing and mixed-map batching so a fit fits its GPU.

    Fastest first: parallel message passing with one batch; then sequential message
    passing (~4x less memory); then split the batch into as many mixed-map iterations as
    the remaining factor needs.
    """
    estimate = full_model_gpu_mb(frames, latent_dim)
    if not on_gpu:
        return MemoryPlan(False, 1, estimate, None, "CPU: keypoint-moseq's CPU default")
    if gpu_memory_mb is None:
        return MemoryPlan(None, 1, estimate, None, "GPU memory unknown: keypoint-moseq's default")
    usable = GPU_MEMORY_USABLE_FRACTION * gpu_memory_mb
    if estimate <= usable:
        return MemoryPlan(True, 1, estimate, gpu_memory_mb, "fits with parallel message passing")
    sequential = estimate / SEQUENTIAL_MESSAGE_PASSING_SAVING
    if sequential <= usable:
        return MemoryPlan(False, 1, estimate, gpu_memory_mb, "fits with sequential message passing")
    iters = int(math.ceil(sequential / usable))
    return MemoryPlan(
        False, iters, estimate, gpu_memory_mb, f"needs {iters} mixed-map batches per sweep"
    )


def device_memory_mb() -> tuple[bool, float | None]:
    """Whether JAX runs on a GPU here, and that GPU's memory limit in MB if JAX says."""
    import jax

    device = jax.devices()[0]
    if device.platform != "gpu":
        return False, None
    stats = device.memory_stats() or {}
    limit = stats.get("bytes_limit")
    return True, (None if limit is None else limit / 2**20)


def plan_for_job(frames: int, latent_dim: int, configured_gpu_memory_gb, log) -> MemoryPlan:
    """The plan for this process's device; the configured GPU memory wins over the device's
    report (a shared GPU may offer a job less than the card has)."""
    on_gpu, reported_mb = device_memory_mb()
    available = reported_mb if configured_gpu_memory_gb is None else configured_gpu_memory_gb * 1024
    plan = plan_fit_memory(frames, latent_dim, available, on_gpu)
    log.info("%s; %d padded frames, latent_dim %d", plan.describe(), frames, latent_dim)
    return plan


def checkpoint_latent_dim(checkpoint_path) -> int:
    """latent_dim of a keypoint-moseq checkpoint, read without loading the model."""
    import h5py

    with h5py.File(checkpoint_path, "r") as f:
        snapshots = f["model_snapshots"]
        last = max(snapshots, key=int)
        return int(snapshots[last]["hypparams/ar_hypparams/latent_dim"][()])
