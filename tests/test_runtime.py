"""Runtime settings come from Snakemake resources; legacy config keys still work, loudly."""

from types import SimpleNamespace

from kpms_flow.runtime import (
    DEFAULT_JAX_CACHE,
    DEFAULT_WATCHDOG_MAX_RESTARTS,
    DEFAULT_WATCHDOG_TIMEOUT_S,
    legacy_runtime_message,
    runtime_settings,
)


def job(resources=None, config=None):
    """What runtime_settings reads of a rule script's ``snakemake`` object."""
    return SimpleNamespace(resources=dict(resources or {}), config=dict(config or {}))


def test_defaults_without_resources_or_config(monkeypatch):
    monkeypatch.delenv("KPMS_FLOW_JAX_CACHE", raising=False)
    settings = runtime_settings(job())
    assert settings.watchdog == {
        "timeout_s": DEFAULT_WATCHDOG_TIMEOUT_S,
        "max_restarts": DEFAULT_WATCHDOG_MAX_RESTARTS,
    }
    assert settings.gpu_memory_gb is None
    assert settings.jax_cache_dir == DEFAULT_JAX_CACHE


def test_resources_win_over_legacy_config_and_environment(monkeypatch):
    monkeypatch.setenv("KPMS_FLOW_JAX_CACHE", "/env/cache")
    legacy = {"watchdog": {"timeout_s": 5, "max_restarts": 0}, "gpu_memory_gb": 8, "jax_cache_dir": "/old"}
    resources = {"watchdog_timeout_s": 60, "watchdog_max_restarts": 3, "gpu_mem_mb": 40960,
                 "jax_cache_dir": "/shared/cache"}
    settings = runtime_settings(job(resources, legacy))
    assert settings.watchdog == {"timeout_s": 60.0, "max_restarts": 3}
    assert settings.gpu_memory_gb == 40.0
    assert settings.jax_cache_dir == "/shared/cache"


def test_legacy_config_keys_are_honoured_then_the_environment(monkeypatch):
    monkeypatch.setenv("KPMS_FLOW_JAX_CACHE", "/env/cache")
    legacy = {"watchdog": {"timeout_s": 5}, "gpu_memory_gb": 8}
    settings = runtime_settings(job({}, legacy))
    assert settings.watchdog == {"timeout_s": 5.0, "max_restarts": DEFAULT_WATCHDOG_MAX_RESTARTS}
    assert settings.gpu_memory_gb == 8.0
    assert settings.jax_cache_dir == "/env/cache"
    # An empty string turns the cache off and is not "unset".
    assert runtime_settings(job({"jax_cache_dir": ""})).jax_cache_dir == ""


def test_legacy_message_names_each_key_and_where_it_goes():
    assert legacy_runtime_message({"seed": 0, "watchdog": None}) is None
    message = legacy_runtime_message({"watchdog": {"timeout_s": 5}, "gpu_memory_gb": 8})
    assert "['watchdog', 'gpu_memory_gb']" in message
    assert "watchdog -> watchdog_timeout_s / watchdog_max_restarts" in message
    assert "gpu_memory_gb -> gpu_mem_mb" in message
    assert "honoured this time" in message and "default-resources" in message


SAMPLER_RUN = """
import json, sys
import numpy as np
from kpms_flow.runtime import configure_jax
configure_jax(cache_dir=sys.argv[1])
from jax_moseq.utils import transitions
sampler = transitions._sample_loyal_crf_table_counts
counts = np.random.default_rng(0).integers(0, 50, (25, 25)).astype(np.int32)
concentrations = np.random.default_rng(1).uniform(0.1, 2.0, 25)
tables = sampler(np.random.default_rng(2), counts, concentrations, 1000.0)
print(json.dumps({"hits": sum(sampler.stats.cache_hits.values()),
                  "misses": sum(sampler.stats.cache_misses.values()), "tables": tables.tolist()}))
"""


def test_jax_moseqs_numba_sampler_is_compiled_once_then_loaded_from_the_cache(tmp_path):
    """kpms_patches patch 4: the first job compiles the sampler into <compile cache>/numba,
    the next loads it and draws the same numbers."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    cache = tmp_path / "cache"

    def job():
        proc = subprocess.run([sys.executable, "-c", SAMPLER_RUN, str(cache)], env=env,
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first, second = job(), job()
    assert (first["hits"], first["misses"]) == (0, 1)
    assert any((cache / "numba").rglob("*.nbi")), "nothing written under the compile cache's numba folder"
    assert (second["hits"], second["misses"]) == (1, 0)
    assert second["tables"] == first["tables"]
