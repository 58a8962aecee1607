"""Small keypoint-moseq checkpoints written without fitting (no JAX compilation).

The layout is fit_model's: ``model_snapshots/<iteration>`` (states, params, hypparams,
noise_prior, seed), ``data`` and ``metadata``, written with keypoint-moseq's own
``save_hdf5``; the segments and mask come from jax-moseq's ``batch``, as format_data makes
them. The numbers are random but of valid kinds (``Q`` positive definite, ``pi`` rows
summing to 1), so keypoint-moseq and jax-moseq can read and score them. Used by
tests/test_selection.py and benchmarks/eml_memory.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_data(session_frames=(400, 250), keypoints=5, seg_length=200, seed=0):
    """Training data (``Y``, ``conf``, ``mask``) and metadata as format_data returns them."""
    from jax_moseq.utils import batch

    rng = np.random.default_rng(seed)
    coordinates = {
        f"session_{k}": rng.normal(size=(frames, keypoints, 2)).cumsum(0) * 0.1
        for k, frames in enumerate(session_frames)
    }
    Y, mask, metadata = batch(coordinates, seg_length=seg_length)
    data = {"Y": Y, "conf": np.ones(Y.shape[:-1]), "mask": mask.astype(float)}
    keys, bounds = metadata
    return data, (np.asarray(keys), np.asarray(bounds))


def synthetic_model(data, seed, latent_dim=3, nlags=2, num_states=6, x=None):
    """A model dictionary shaped like keypoint-moseq's (random values, seeded)."""
    rng = np.random.default_rng(seed)
    segments, frames, keypoints, dims = data["Y"].shape
    if x is None:
        x = rng.normal(size=(segments, frames, latent_dim)).cumsum(1) * 0.05
    Q = np.stack([np.eye(latent_dim) * rng.uniform(0.5, 1.5) for _ in range(num_states)])
    states = {
        "x": x,
        "z": rng.integers(0, num_states, size=(segments, frames - nlags)),
        "v": rng.normal(size=(segments, frames, dims)),
        "h": rng.uniform(-np.pi, np.pi, size=(segments, frames)),
        "s": rng.uniform(0.5, 1.5, size=(segments, frames, keypoints)),
    }
    params = {
        "Ab": rng.normal(scale=0.2, size=(num_states, latent_dim, latent_dim * nlags + 1)),
        "Q": Q,
        "pi": rng.dirichlet(np.ones(num_states), size=num_states),
        "Cd": rng.normal(scale=0.5, size=((keypoints - 1) * dims, latent_dim + 1)),
        "sigmasq": np.ones(keypoints),
        "betas": rng.dirichlet(np.ones(num_states)),
    }
    hypparams = {
        "ar_hypparams": {"latent_dim": latent_dim, "nlags": nlags, "num_states": num_states},
        "obs_hypparams": {"sigmasq_0": 0.1, "sigmasq_C": 0.1, "nu_sigma": 1e5, "nu_s": 5},
        "cen_hypparams": {"sigmasq_loc": 0.5},
        "trans_hypparams": {"num_states": num_states, "gamma": 1e3, "alpha": 5.7, "kappa": 1e3},
    }
    return {
        "states": states,
        "params": params,
        "hypparams": hypparams,
        "noise_prior": np.ones((segments, frames, keypoints)),
        "seed": np.array([0, seed], dtype=np.uint32),
    }


def write_checkpoint(path, data, metadata, snapshots: dict) -> Path:
    """Write ``{iteration: model}`` snapshots with the data as fit_model lays them out."""
    from keypoint_moseq.io import save_hdf5

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_hdf5(
        str(path),
        {
            "model_snapshots": {str(i): model for i, model in snapshots.items()},
            "metadata": metadata,
            "data": data,
        },
    )
    return path


def restart_checkpoints(
    folder, n_models, iterations=(0, 5, 10), model_kwargs=None, **data_kwargs
) -> list[Path]:
    """``n_models`` checkpoints of one data set, each with its own seed and snapshots at
    ``iterations`` (the latent states drift from snapshot to snapshot).

    ``model_kwargs`` go to :func:`synthetic_model` (latent_dim, nlags, num_states),
    ``data_kwargs`` to :func:`synthetic_data`.
    """
    data, metadata = synthetic_data(**data_kwargs)
    model_kwargs = model_kwargs or {}
    paths = []
    for seed in range(n_models):
        base = synthetic_model(data, seed=100 + seed, **model_kwargs)
        snapshots = {}
        for step, iteration in enumerate(iterations):
            x = base["states"]["x"] * (1 + 0.1 * step)
            snapshots[iteration] = synthetic_model(data, seed=100 + seed, x=x, **model_kwargs)
        paths.append(write_checkpoint(Path(folder) / f"restart_{seed}" / "checkpoint.h5", data, metadata, snapshots))
    return paths
