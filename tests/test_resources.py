"""Resources planned from the data: memory, run time and the GPU memory plan of fits."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest

from kpms_flow import resources
from kpms_flow.resources import plan_fit_memory


def test_published_estimate_three_mb_per_hundred_frames_at_four_dims():
    assert resources.full_model_gpu_mb(100, 4) == pytest.approx(3.0)
    # Linear in frames and in latent dimensions.
    assert resources.full_model_gpu_mb(1_000_000, 8) == pytest.approx(60_000)


def test_plan_uses_parallel_message_passing_when_it_fits():
    plan = plan_fit_memory(frames=500_000, latent_dim=4, gpu_memory_mb=40_000, on_gpu=True)
    assert plan.estimated_mb == pytest.approx(15_000)
    assert (plan.parallel_message_passing, plan.mixed_map_iters) == (True, 1)


def test_plan_falls_back_to_sequential_message_passing():
    # 60 GB estimated on a 40 GB card: sequential message passing needs ~15 GB.
    plan = plan_fit_memory(frames=2_000_000, latent_dim=4, gpu_memory_mb=40_000, on_gpu=True)
    assert (plan.parallel_message_passing, plan.mixed_map_iters) == (False, 1)
    assert "sequential" in plan.reason


def test_plan_splits_sweeps_into_mixed_map_batches_when_still_too_big():
    # 600 GB estimated, 150 GB sequential, 16 GB card (14.4 GB usable) -> 11 batches.
    plan = plan_fit_memory(frames=10_000_000, latent_dim=8, gpu_memory_mb=16_000, on_gpu=True)
    assert plan.parallel_message_passing is False
    assert plan.mixed_map_iters == 11
    assert plan.estimated_mb / 4 / plan.mixed_map_iters <= 0.9 * 16_000


def test_plan_on_cpu_keeps_keypoint_moseq_default():
    plan = plan_fit_memory(frames=10_000_000, latent_dim=8, gpu_memory_mb=None, on_gpu=False)
    assert (plan.parallel_message_passing, plan.mixed_map_iters) == (False, 1)
    unknown = plan_fit_memory(frames=1000, latent_dim=4, gpu_memory_mb=None, on_gpu=True)
    assert unknown.parallel_message_passing is None


def test_plan_for_job_logs_the_plan_and_prefers_configured_memory(caplog):
    log = logging.getLogger("test_resources")
    with caplog.at_level(logging.INFO, logger="test_resources"):
        plan = resources.plan_for_job(20_000, 6, configured_gpu_memory_gb=None, log=log)
    # This machine's JAX runs on the CPU.
    assert plan.parallel_message_passing is False
    assert "GPU memory plan: estimated 900 MB" in caplog.text
    assert "20000 padded frames, latent_dim 6" in caplog.text


def test_memory_and_runtime_grow_with_frames_iterations_and_attempts():
    small = resources.host_mem_mb(10_000, latent_dim=4)
    big = resources.host_mem_mb(1_000_000, latent_dim=4)
    assert small >= resources.BASE_MEM_MB and big > small
    assert resources.host_mem_mb(1_000_000, 4, attempt=2) == pytest.approx(2 * big, abs=1)
    assert resources.host_mem_mb(None) == resources.BASE_MEM_MB
    short = resources.fit_runtime_min(10_000, 25)
    long = resources.fit_runtime_min(1_000_000, 500)
    assert short == resources.BASE_RUNTIME_MIN + 1  # tiny fits: the start-up allowance
    # 1 M frames x 500 sweeps at 50 us, x3 safety: 1,250 min on top of the base.
    assert long == resources.BASE_RUNTIME_MIN + 1250
    assert resources.fit_runtime_min(1_000_000, 500, attempt=2) == 2 * long


def test_frame_counts_read_from_file_shapes(tmp_path):
    data = tmp_path / "data.h5"
    with h5py.File(data, "w") as f:
        f.create_dataset("data/mask", data=np.ones((3, 1024)))
    clean = tmp_path / "clean.h5"
    with h5py.File(clean, "w") as f:
        f.create_dataset("coordinates", data=np.zeros((777, 5, 2)))
    assert resources.padded_frames(data) == 3072
    assert resources.session_frames(clean) == 777
    assert resources.padded_frames(tmp_path / "missing.h5") is None


def test_resource_functions_never_fail_a_dag_on_unfinished_files(tmp_path):
    """Placeholders (a dry run's 'complete' state), foreign files and absent inputs (a fit
    whose input is still a pending search checkpoint) mean "unknown", not an exception."""
    placeholder = tmp_path / "latent_dim.txt"
    placeholder.write_text("placeholder")
    not_hdf5 = tmp_path / "data.h5"
    not_hdf5.write_text("placeholder")
    assert resources.planned_latent_dim(placeholder) == resources.UNKNOWN_LATENT_DIM
    assert resources.planned_latent_dim(None) == resources.UNKNOWN_LATENT_DIM
    assert resources.padded_frames(not_hdf5) is None
    assert resources.padded_frames(None) is None
    assert resources.session_frames(not_hdf5) is None
    assert resources.checkpoint_latent_dim_or_none(not_hdf5) == resources.UNKNOWN_LATENT_DIM
    placeholder.write_text("7\n")
    assert resources.planned_latent_dim(placeholder) == 7
    assert resources.host_mem_mb(None, resources.planned_latent_dim(None)) == resources.BASE_MEM_MB


def test_a_fit_takes_the_memory_plan(tmp_path):
    from kpms_flow.fitting import FitSpec

    spec = FitSpec(work_dir=tmp_path, output=tmp_path / "c.h5", num_iters=5, ar_only=False, fingerprint="x")
    assert (spec.parallel_message_passing, spec.mixed_map_iters) == (None, 1)
    spec.use_memory_plan(plan_fit_memory(10_000_000, 8, 16_000, on_gpu=True))
    assert (spec.parallel_message_passing, spec.mixed_map_iters) == (False, 11)


def test_input_size_sums_the_files_and_a_missing_input_is_not_known_yet(tmp_path):
    from snakemake.exceptions import is_file_not_found_error

    (tmp_path / "a.h5").write_bytes(b"x" * 3_000_000)
    (tmp_path / "b.h5").write_bytes(b"x" * 145)
    files = [str(tmp_path / "a.h5"), str(tmp_path / "b.h5")]
    assert resources.input_size_mb(files) == pytest.approx(3_000_145 / 2**20)  # as size_mb
    assert resources.light_mem_mb(resources.input_size_mb(files)) == 1000 + 58
    # Snakemake turns this error into "to be determined" (it names one of the job's inputs).
    missing = [str(tmp_path / "a.h5"), str(tmp_path / "not_yet.h5")]
    with pytest.raises(FileNotFoundError) as error:
        resources.input_size_mb(missing)
    assert is_file_not_found_error(error.value, missing)
