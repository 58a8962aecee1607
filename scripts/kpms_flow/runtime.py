"""Process set-up for rule scripts: logging to the rule's log, JAX settings."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_JAX_CACHE = ".snakemake/kpms-flow-jax-cache"
# A sweep slower than this (the first one's JIT compilation included) is taken for a hang.
DEFAULT_WATCHDOG_TIMEOUT_S = 1800
DEFAULT_WATCHDOG_MAX_RESTARTS = 2


@dataclass(frozen=True)
class RuntimeSettings:
    """How a JAX job runs, not what it computes: set as Snakemake resources (profiles,
    ``--default-resources``, ``--set-resources``), so changing them reruns nothing."""

    watchdog_timeout_s: float = DEFAULT_WATCHDOG_TIMEOUT_S
    watchdog_max_restarts: int = DEFAULT_WATCHDOG_MAX_RESTARTS
    gpu_memory_gb: float | None = None  # None: what the GPU reports
    jax_cache_dir: str = DEFAULT_JAX_CACHE

    @property
    def watchdog(self) -> dict:
        return {"timeout_s": self.watchdog_timeout_s, "max_restarts": self.watchdog_max_restarts}


# Config keys that were runtime settings before they became resources (still honoured).
LEGACY_RUNTIME_KEYS = {
    "watchdog": "watchdog_timeout_s / watchdog_max_restarts",
    "gpu_memory_gb": "gpu_mem_mb",
    "jax_cache_dir": "jax_cache_dir",
}


def legacy_runtime_message(config) -> str | None:
    """What to tell a user whose config still sets a runtime key (None when it does not)."""
    keys = [key for key in LEGACY_RUNTIME_KEYS if config.get(key) is not None]
    if not keys:
        return None
    moves = "; ".join(f"{key} -> {LEGACY_RUNTIME_KEYS[key]}" for key in keys)
    return (
        f"config keys {keys} are runtime settings now: they are honoured this time, but "
        f"move them to your profile's default-resources ({moves}; see config/README.md, "
        "'Runtime settings'), where changing them reruns nothing"
    )


def runtime_settings(smk) -> RuntimeSettings:
    """A job's runtime settings: its resources, else a legacy config key, else the default.

    The environment variable KPMS_FLOW_JAX_CACHE names the compile cache when neither a
    resource nor the config does (the tests share one cache that way).
    """
    resources = dict(smk.resources.items()) if smk.resources else {}
    config = smk.config or {}
    legacy_watchdog = config.get("watchdog") or {}
    timeout = resources.get(
        "watchdog_timeout_s", legacy_watchdog.get("timeout_s", DEFAULT_WATCHDOG_TIMEOUT_S)
    )
    restarts = resources.get(
        "watchdog_max_restarts",
        legacy_watchdog.get("max_restarts", DEFAULT_WATCHDOG_MAX_RESTARTS),
    )
    if resources.get("gpu_mem_mb"):
        gpu_gb = float(resources["gpu_mem_mb"]) / 1024
    elif config.get("gpu_memory_gb") is not None:
        gpu_gb = float(config["gpu_memory_gb"])
    else:
        gpu_gb = None
    cache = resources.get("jax_cache_dir")
    if cache is None:
        cache = config.get("jax_cache_dir")
    if cache is None:
        cache = os.environ.get("KPMS_FLOW_JAX_CACHE", DEFAULT_JAX_CACHE)
    return RuntimeSettings(float(timeout), int(restarts), gpu_gb, str(cache))


def log_to(log_path: str | os.PathLike | None) -> logging.Logger:
    """Send stdout, stderr (tqdm bars, keypoint-moseq prints) and logging to the rule's log."""
    logger = logging.getLogger("kpms_flow")
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        # XLA's C++ logging writes to file descriptor 2 directly: redirect the descriptors,
        # not only Python's streams, and keep the console for the one-line error.
        console = os.fdopen(os.dup(2), "w", buffering=1)
        stream = open(log_path, "w", buffering=1)
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        sys.stdout = sys.stderr = stream

        def report(kind, error, trace):
            # Full traceback in the log; the cause on the console, where users look.
            sys.__excepthook__(kind, error, trace)
            print(f"ERROR: {error}\n(full log: {log_path})", file=console)

        sys.excepthook = report
    # Our own handler: importing jax (absl) reconfigures the root logger.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def configure_jax(threads: int = 1, cache_dir: str | None = None) -> None:
    """Set JAX up before it is imported: threads, x64, the persistent compile cache.

    ``cache_dir``: the compile cache ("" turns it off; None: KPMS_FLOW_JAX_CACHE, else
    the default under .snakemake). Its ``numba`` folder holds numba's cache of jax-moseq's
    table-count sampler (kpms_patches, patch 4), unless NUMBA_CACHE_DIR is set.

    Must run before ``import jax``; the compile cache makes every fitting job after the
    first skip most of the ~45 s of XLA compilation (keypoint-moseq-facts.md).
    """
    threads = max(int(threads), 1)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (
                flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            ).strip()
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Two fits on one GPU must not each grab 75 % of its memory.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # XLA:CPU logs an ERROR line per cache entry it loads ("Target machine feature
    # +prefer-no-gather is not supported", tuning flags, not instructions; jax-ml/jax#38445):
    # hundreds of lines a job. Real failures still raise Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # keypoint-moseq's progress bars: one update per 10 s keeps the logs short.
    os.environ.setdefault("TQDM_MININTERVAL", "10")

    cache = cache_dir if cache_dir is not None else os.environ.get("KPMS_FLOW_JAX_CACHE", DEFAULT_JAX_CACHE)
    if cache:
        # numba's compiled code beside JAX's: one folder of compiled code, one setting. Read
        # when numba is imported (by jax_moseq, below).
        os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(cache, "numba").resolve()))

    import keypoint_moseq  # noqa: F401  (turns on jax_enable_x64 before jax_moseq runs)
    import jax

    from .kpms_patches import cache_table_count_sampler, install_sweep_wrappers

    install_sweep_wrappers()

    if cache:
        cache_table_count_sampler()
        Path(cache).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(Path(cache).resolve()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    report_devices(logging.getLogger("kpms_flow"))


def cuda_plugin() -> str | None:
    """JAX's CUDA plugin installed here (name and version), or None."""
    from importlib import metadata

    for dist in ("jax-cuda12-plugin", "jax-cuda13-plugin"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def report_devices(log) -> None:
    """Log where JAX runs; warn when the scheduler gave this job a GPU that JAX cannot use
    (a CPU-only jaxlib on a GPU node would fit on the CPU, many times slower)."""
    import jax

    devices = jax.devices()
    log.info("JAX devices: %s", ", ".join(f"{d.platform}:{d.id}" for d in devices))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if visible and visible != "-1" and devices[0].platform == "cpu":
        plugin = cuda_plugin()
        if plugin:
            # The CUDA lock is installed: JAX tried the GPU and printed why it failed (no
            # NVIDIA driver, or one too old for the plugin's CUDA) before falling back.
            advice = (
                f"{plugin} is installed but could not use the GPU (its error is above in this "
                "log; check the node's NVIDIA driver with nvidia-smi)"
            )
        else:
            advice = (
                "install envs/requirements-cuda.lock.txt on the GPU nodes (README: Running on "
                "a cluster)"
            )
        log.warning(
            "this job was given GPU(s) (CUDA_VISIBLE_DEVICES=%s) but JAX runs on the CPU: %s",
            visible,
            advice,
        )


def start_jax_job(smk, watched: bool = True):
    """Set up a rule script that runs JAX; returns its logger and runtime settings.

    With ``watched`` (every job that runs keypoint-moseq sweeps) the work runs in a child
    process that the watchdog restarts when it stops making progress
    (:func:`kpms_flow.watchdog.supervise`); the settings come from the job's resources, so
    changing them reruns nothing.
    """
    settings = runtime_settings(smk)
    if watched:
        from .watchdog import supervise

        log = supervise(smk.log[0], settings.watchdog, what=smk.rule)
    else:
        log = log_to(smk.log[0])
    configure_jax(smk.threads, settings.jax_cache_dir)
    return log, settings
