"""A job given a GPU that JAX cannot use says so in its log (kpms_flow.runtime.report_devices).

On a GPU node with a CPU-only jaxlib, or the CUDA lock installed on a machine whose GPU is
missing or unusable, JAX falls back to the CPU: the fit would run many times slower with
nothing in the log but the plugin's own traceback. This machine has no GPU, so JAX runs on
the CPU here. (With envs/requirements-cuda.lock.txt installed on such a machine, JAX prints
"Jax plugin configuration error ... cuInit(0) failed" and falls back: benchmarks/README.md,
GPU check.)
"""

from __future__ import annotations

import logging

import jax
import pytest

from kpms_flow import runtime
from kpms_flow.runtime import report_devices

WARNING = "was given GPU(s) (CUDA_VISIBLE_DEVICES=0) but JAX runs on the CPU"


@pytest.fixture
def fit_log(caplog):
    caplog.set_level(logging.INFO, logger="kpms_flow")
    return logging.getLogger("kpms_flow")


def test_gpu_given_but_jax_on_cpu_warns(monkeypatch, caplog, fit_log):
    assert jax.devices()[0].platform == "cpu", "this test needs a machine where JAX runs on the CPU"
    monkeypatch.setattr(runtime, "cuda_plugin", lambda: None)  # the CPU lock's case
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    report_devices(fit_log)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert WARNING in warnings[0].getMessage()
    assert "envs/requirements-cuda.lock.txt" in warnings[0].getMessage()
    assert "JAX devices: cpu:0" in caplog.text


@pytest.mark.parametrize("visible", [None, "", "-1"])
def test_no_gpu_given_no_warning(monkeypatch, caplog, fit_log, visible):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    report_devices(fit_log)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "JAX devices: cpu:0" in caplog.text


def test_cuda_plugin_installed_but_unusable_points_at_the_driver(monkeypatch, caplog, fit_log):
    # What the CUDA lock gives on a node without a usable GPU driver.
    monkeypatch.setattr(runtime, "cuda_plugin", lambda: "jax-cuda12-plugin 0.9.2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    report_devices(fit_log)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert WARNING in warning
    assert "jax-cuda12-plugin 0.9.2 is installed but could not use the GPU" in warning
    assert "nvidia-smi" in warning
    assert "install envs/requirements-cuda.lock.txt" not in warning
