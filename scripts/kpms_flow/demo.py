"""Synthetic demo sessions with known behavioural states, written as DeepLabCut files.

The generator is meant to be a fair test of the pipeline, not a trivially separable one:

1. Discrete states follow a sticky Markov chain and the latent pose follows a linear
   autoregressive process whose parameters depend on the state (an AR-HMM, the same
   generative family that Keypoint-MoSeq fits). States differ in fixed point, damping and
   oscillation frequency, and the latent relaxes gradually towards the new fixed point after
   a switch, so posture alone only partly identifies the state.
2. The latent is mapped linearly onto smooth, plausible body deformations (bending,
   stretching, head turns, ear spread) of a 7-keypoint mouse-like skeleton.
3. The skeleton is rotated by a heading and translated by a centroid that wanders in a
   500 px arena, with state-dependent (but overlapping) speed and turning bias.
4. Detector artefacts are added: keypoint noise whose size depends on the likelihood the
   way keypoint-moseq's noise calibration models it (``log10(|error| + 1) = ERROR_SLOPE *
   log10(likelihood) + ERROR_INTERCEPT``, scatter ``ERROR_SCATTER``), missing points (NaN,
   with low likelihood; single frames and short bursts) and rare large outliers.
5. Labels as DeepLabCut's labelled frames (``LABELLED_FRAMES`` frames per session, enriched
   for low likelihood, the true keypoint positions), from which the pipeline's noise
   calibration recovers the error model's slope and intercept.

All randomness comes from ``numpy.random.default_rng`` seeded via ``SeedSequence``, so a
given ``seed`` always yields identical arrays. The true model is drawn once per seed and
shared by all sessions; session ``i`` always gets the same draws whatever ``n_sessions``.

Layout written by :func:`generate_demo`::

    out_dir/pose/demo_01DLC_resnet50_demoSep1shuffle1_1000.h5
    out_dir/ground_truth/demo_01.csv        frame,state
    out_dir/ground_truth/params.json        true AR-HMM parameters and generator settings
                                            (error_slope, error_intercept: the noise model)
    out_dir/labeled-data/demo_01/CollectedData_demo.h5
                                            labelled frames, as DeepLabCut writes them
    out_dir/video/demo_01.mp4               with ``videos=True``: the true (noise-free) pose
                                            drawn in the 500 px arena, for grid movies
    out_dir/sessions.tsv                    session table for the workflow
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path, write_table, write_text
from .video import write_pose_video

BODYPARTS = ["nose", "left_ear", "right_ear", "neck", "spine", "hips", "tailbase"]
SCORER = "DLC_resnet50_demoSep1shuffle1_1000"
SESSIONS_COLUMNS = ["session", "path", "format", "animal", "fps", "group", "train", "video"]
# Bodypart pairs drawn as the body in the demo videos (config/demo.yaml's skeleton).
SKELETON = [
    ("nose", "neck"),
    ("left_ear", "neck"),
    ("right_ear", "neck"),
    ("neck", "spine"),
    ("spine", "hips"),
    ("hips", "tailbase"),
]

# Egocentric mean shape in px, x pointing from tail to nose (~95 px nose to tail base,
# i.e. a mouse filmed at ~1 px/mm in a 50 cm arena).
MEAN_SHAPE = np.array(
    [
        [48.0, 0.0],  # nose
        [28.0, 11.0],  # left_ear
        [28.0, -11.0],  # right_ear
        [18.0, 0.0],  # neck
        [-2.0, 0.0],  # spine
        [-24.0, 0.0],  # hips
        [-45.0, 0.0],  # tailbase
    ]
)

# Defaults of the generative model. Time constants are given in seconds / per-second units
# so that the behaviour looks the same at any frame rate.
N_STATES = 5
LATENT_DIM = 4
NLAGS = 1
REFERENCE_FPS = 30.0
MEAN_DURATIONS_S = (0.37, 0.40, 0.43, 0.47, 0.50)  # 11-15 frames at 30 fps; median bout ~9
ARENA_PX = 500.0
# Tracker noise as keypoint-moseq's calibration fits it (its error_estimator): the size of a
# point's error grows as its likelihood falls. About as noisy as the former Gaussian noise
# of 1.5 px per axis (mean error ~1.9 px), with likelihoods spread over 0.32..1 instead of
# 0.9..1 so that labels can recover the slope.
ERROR_SLOPE = -0.5
ERROR_INTERCEPT = 0.38
ERROR_SCATTER = 0.1  # sd of log10(|error| + 1) around the line
LIKELIHOOD_LOG10_SPREAD = 0.5  # log10(likelihood) = -spread * Beta(1, 3)
LABELLED_FRAMES = 20  # per session, DeepLabCut's default numframes2pick
LABEL_SCORER = "demo"
DROP_PROB = 0.012  # isolated missing points
BURSTS_PER_MINUTE = 6.0  # short occlusion bursts
OUTLIER_PROB = 0.002
BURN_IN_S = 5.0


# --------------------------------------------------------------------------- true model


def _rotation(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _random_orthogonal(rng: np.random.Generator, dim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def _shape_basis(rng: np.random.Generator, latent_dim: int, rms_px: float) -> np.ndarray:
    """Smooth body deformations, one per latent dimension, shape (latent_dim, K, 2).

    Each mode bends the body laterally (cubic in the anterior-posterior coordinate),
    stretches it along its axis and moves the ears apart or together, so that any latent
    value gives a plausible posture. Rigid translation and rotation are projected out:
    the workflow removes them anyway by egocentric alignment.
    """
    u = MEAN_SHAPE[:, 0] / np.abs(MEAN_SHAPE[:, 0]).max()  # -1 (tail) .. 1 (nose)
    ears = np.array([0, 1, 1, 0, 0, 0, 0], dtype=float)
    ear_side = np.sign(MEAN_SHAPE[:, 1])
    rigid = [
        np.tile([1.0, 0.0], len(BODYPARTS)),
        np.tile([0.0, 1.0], len(BODYPARTS)),
        np.stack([-MEAN_SHAPE[:, 1], MEAN_SHAPE[:, 0]], axis=1).ravel(),
    ]
    rigid_q, _ = np.linalg.qr(np.stack(rigid, axis=1))
    modes = []
    for _ in range(latent_dim):
        a = rng.normal(size=4) * np.array([0.3, 1.0, 1.0, 0.7])
        b = rng.normal(size=3) * np.array([0.2, 0.6, 0.4])
        lateral = a[0] + a[1] * u + a[2] * u**2 + a[3] * u**3
        axial = b[0] + b[1] * u + b[2] * u**2
        spread = rng.normal() * 0.2 * ears * ear_side
        mode = np.stack([axial, lateral + spread], axis=1).ravel()
        mode -= rigid_q @ (rigid_q.T @ mode)
        mode *= rms_px / np.sqrt(np.mean(mode.reshape(-1, 2) ** 2 * 2))
        modes.append(mode.reshape(len(BODYPARTS), 2))
    return np.stack(modes)


def sample_true_model(seed: int = 0, fps: float = REFERENCE_FPS) -> dict:
    """Draw the true AR-HMM and body model for ``seed``.

    Parameters
    ----------
    seed : int
        Seed of the model; the same seed always gives the same parameters.
    fps : float
        Frame rate. Per-frame parameters are derived from per-second ones so that
        durations in seconds and movement speeds do not depend on it.

    Returns
    -------
    dict
        Arrays ``Ab`` (states, latent_dim, latent_dim*nlags+1), ``Q``, ``pi``, ``pi0``,
        ``C`` (latent_dim, K, 2), ``mean_shape`` and per-state movement parameters.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    c = REFERENCE_FPS / float(fps)  # reference frames per actual frame
    n, d = N_STATES, LATENT_DIM

    # Per-state latent dynamics: two damped rotations in a state-specific basis. Spectral
    # radius < 1 keeps every state stable; frequencies span ~0.5-4 Hz.
    freqs_hz = np.array(
        [rng.uniform(0.4, 4.0, size=2) for _ in range(n)]
    )  # (n, 2) oscillation frequencies per 2-d block
    tau_s = rng.uniform(0.12, 0.35, size=(n, 2))  # damping time constants
    radii = np.exp(-1.0 / (tau_s * fps))
    stationary_sd = rng.uniform(0.5, 0.8, size=(n, 2))
    # Fixed points: spread in latent space but overlapping with within-state variability.
    fixed_points = rng.normal(size=(n, d))
    fixed_points *= 1.2 / np.linalg.norm(fixed_points, axis=1, keepdims=True)
    fixed_points *= rng.uniform(0.6, 1.4, size=(n, 1))

    A = np.zeros((n, d, d))
    Q = np.zeros((n, d, d))
    for k in range(n):
        block_a = np.zeros((d, d))
        block_q = np.zeros((d, d))
        for j in range(2):
            sl = slice(2 * j, 2 * j + 2)
            block_a[sl, sl] = radii[k, j] * _rotation(2 * np.pi * freqs_hz[k, j] / fps)
            # Noise chosen so the stationary s.d. around the fixed point is stationary_sd.
            block_q[sl, sl] = np.eye(2) * stationary_sd[k, j] ** 2 * (1 - radii[k, j] ** 2)
        U = _random_orthogonal(rng, d)
        A[k] = U @ block_a @ U.T
        Q[k] = U @ block_q @ U.T
    b = np.einsum("kij,kj->ki", np.eye(d)[None] - A, fixed_points)
    Ab = np.concatenate([A, b[:, :, None]], axis=2)

    # Sticky transitions: self-transition sets the mean duration, the rest is a random
    # (non-uniform) preference over the other states.
    mean_durations_frames = np.array(MEAN_DURATIONS_S) * fps
    rng.shuffle(mean_durations_frames)
    pi = np.zeros((n, n))
    for k in range(n):
        stay = 1.0 - 1.0 / mean_durations_frames[k]
        others = rng.dirichlet(np.full(n - 1, 2.0))
        pi[k, np.arange(n) != k] = (1.0 - stay) * others
        pi[k, k] = stay
    pi0 = np.full(n, 1.0 / n)

    # Movement: speed (px/s) and turning bias (rad/s) overlap across states.
    speeds_px_s = rng.permutation(np.linspace(15.0, 90.0, n))
    turn_bias_rad_s = rng.uniform(-0.8, 0.8, size=n)

    return {
        "seed": int(seed),
        "fps": float(fps),
        "n_states": n,
        "latent_dim": d,
        "nlags": NLAGS,
        "bodyparts": list(BODYPARTS),
        "Ab": Ab,
        "Q": Q,
        "pi": pi,
        "pi0": pi0,
        "fixed_points": fixed_points,
        "spectral_radius": np.array([np.abs(np.linalg.eigvals(a)).max() for a in A]),
        "oscillation_hz": freqs_hz,
        "mean_durations_frames": 1.0 / (1.0 - np.diag(pi)),
        "C": _shape_basis(rng, d, rms_px=4.0),
        "mean_shape": MEAN_SHAPE.copy(),
        "speed_px_per_frame": speeds_px_s / fps,
        "turn_bias_rad_per_frame": turn_bias_rad_s / fps,
        "heading_noise_rad_per_frame": 0.06 * np.sqrt(c),
        "error_slope": ERROR_SLOPE,
        "error_intercept": ERROR_INTERCEPT,
        "error_scatter": ERROR_SCATTER,
        "drop_prob": DROP_PROB,
        "bursts_per_minute": BURSTS_PER_MINUTE,
        "outlier_prob": OUTLIER_PROB,
        "arena_px": ARENA_PX,
    }


# --------------------------------------------------------------------------- sampling


def _sample_states(model: dict, rng: np.random.Generator, n: int) -> np.ndarray:
    pi, pi0 = model["pi"], model["pi0"]
    cum = np.cumsum(pi, axis=1)
    u = rng.random(n)
    z = np.empty(n, dtype=np.int64)
    cum0 = np.cumsum(pi0)
    z[0] = min(np.searchsorted(cum0, u[0] * cum0[-1], side="right"), len(cum0) - 1)
    for t in range(1, n):
        row = cum[z[t - 1]]
        z[t] = min(np.searchsorted(row, u[t] * row[-1], side="right"), len(row) - 1)
    return z


def _sample_latent(model: dict, rng: np.random.Generator, z: np.ndarray) -> np.ndarray:
    Ab, Q = model["Ab"], model["Q"]
    d = model["latent_dim"]
    chol = np.linalg.cholesky(Q + 1e-12 * np.eye(d))
    eps = rng.normal(size=(len(z), d))
    x = np.empty((len(z), d))
    x[0] = model["fixed_points"][z[0]]
    for t in range(1, len(z)):
        k = z[t]
        x[t] = Ab[k, :, :d] @ x[t - 1] + Ab[k, :, d] + chol[k] @ eps[t]
    return x


def _sample_trajectory(model: dict, rng: np.random.Generator, z: np.ndarray):
    """Centroid (T, 2) and heading (T,) wandering inside the arena."""
    T = len(z)
    arena = model["arena_px"]
    centre = np.array([arena / 2, arena / 2])
    soft_radius = arena / 2 - 90.0
    speed_target = model["speed_px_per_frame"][z]
    turn_bias = model["turn_bias_rad_per_frame"][z]
    noise_turn = rng.normal(size=T) * model["heading_noise_rad_per_frame"]
    noise_speed = rng.normal(size=T)
    pos = np.empty((T, 2))
    heading = np.empty(T)
    pos[0] = centre + rng.uniform(-100, 100, size=2)
    heading[0] = rng.uniform(-np.pi, np.pi)
    speed = speed_target[0]
    for t in range(1, T):
        # Speed relaxes towards the state's target (not a step), so it is only a soft cue.
        target = speed_target[t]
        speed = max(0.0, 0.85 * speed + 0.15 * target + 0.3 * target * noise_speed[t])
        turn = turn_bias[t] + noise_turn[t]
        offset = centre - pos[t - 1]
        dist = np.hypot(*offset)
        if dist > soft_radius:
            # Steer back towards the centre near the walls.
            to_centre = np.arctan2(offset[1], offset[0])
            delta = np.angle(np.exp(1j * (to_centre - heading[t - 1])))
            turn += 0.15 * delta * min(1.0, (dist - soft_radius) / 40.0)
        heading[t] = np.angle(np.exp(1j * (heading[t - 1] + turn)))
        step = speed * np.array([np.cos(heading[t]), np.sin(heading[t])])
        pos[t] = np.clip(pos[t - 1] + step, 60.0, arena - 60.0)
    return pos, heading


def simulate_session(model: dict, rng: np.random.Generator, n_frames: int) -> dict:
    """Sample one session from ``model``.

    Parameters
    ----------
    model : dict
        Output of :func:`sample_true_model`.
    rng : numpy.random.Generator
        Source of all randomness for this session.
    n_frames : int
        Number of frames to return (a burn-in is sampled and discarded first).

    Returns
    -------
    dict
        ``states`` (T,) int, ``latent`` (T, latent_dim), ``coordinates`` (T, K, 2) with NaN
        where missing, ``likelihood`` (T, K), ``centroid`` (T, 2), ``heading`` (T,),
        ``clean`` (T, K, 2), the keypoints before detector artefacts, and ``regular`` (T, K),
        the points that follow the noise model (neither missing nor an outlier).
    """
    fps = model["fps"]
    burn = int(round(BURN_IN_S * fps))
    total = n_frames + burn
    z = _sample_states(model, rng, total)
    x = _sample_latent(model, rng, z)
    z, x = z[burn:], x[burn:]
    pos, heading = _sample_trajectory(model, rng, z)

    ego = model["mean_shape"][None] + np.einsum("td,dkc->tkc", x, model["C"])
    c, s = np.cos(heading), np.sin(heading)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, 2, 2)
    clean = np.einsum("tij,tkj->tki", rot, ego) + pos[:, None, :]

    T, K = clean.shape[:2]
    lik = 10.0 ** (-LIKELIHOOD_LOG10_SPREAD * rng.beta(1.0, 3.0, size=(T, K)))
    log_size = (
        model["error_slope"] * np.log10(lik)
        + model["error_intercept"]
        + rng.normal(0.0, model["error_scatter"], size=(T, K))
    )
    size = np.maximum(10.0**log_size - 1.0, 0.0)
    direction = rng.uniform(-np.pi, np.pi, size=(T, K))
    coords = clean + size[..., None] * np.stack([np.cos(direction), np.sin(direction)], -1)

    # Rare large outliers (detector jumps to something else), with reduced likelihood.
    outlier = rng.random((T, K)) < model["outlier_prob"]
    n_out = int(outlier.sum())
    ang = rng.uniform(-np.pi, np.pi, n_out)
    dist = rng.uniform(50.0, 150.0, n_out)
    coords[outlier] += np.stack([np.cos(ang), np.sin(ang)], 1) * dist[:, None]
    lik[outlier] = rng.uniform(0.1, 0.6, n_out)

    # Missing points: isolated drops plus short occlusion bursts of one or two keypoints.
    missing = rng.random((T, K)) < model["drop_prob"]
    n_bursts = rng.poisson(model["bursts_per_minute"] * T / (60.0 * fps))
    for _ in range(n_bursts):
        length = int(rng.integers(max(2, round(0.1 * fps)), max(3, round(0.5 * fps)) + 1))
        start = int(rng.integers(0, max(1, T - length)))
        kps = rng.choice(K, size=int(rng.integers(1, 3)), replace=False)
        missing[start : start + length, kps] = True
    coords[missing] = np.nan
    lik[missing] = rng.uniform(0.01, 0.1, int(missing.sum()))

    return {
        "states": z.astype(np.int64),
        "latent": x,
        "coordinates": coords,
        "likelihood": lik,
        "centroid": pos,
        "heading": heading,
        "clean": clean,
        "regular": ~(outlier | missing),
    }


def labelled_frames(sim: dict, rng: np.random.Generator, n_frames: int,
                    num_bins: int = 10) -> np.ndarray:
    """Frames to label, enriched for low likelihood as keypoint-moseq's
    ``sample_error_frames`` enriches its samples: frames binned by their lowest regular
    likelihood on log-spaced bins, an equal number drawn from each (with the demo's own
    seeded generator, where keypoint-moseq's uses NumPy's global one)."""
    lik = np.where(sim["regular"], sim["likelihood"], np.nan)
    usable = np.nonzero(np.isfinite(lik).any(1))[0]
    lowest = np.nanmin(lik[usable], axis=1)
    edges = np.logspace(np.log10(lowest.min()), np.log10(lowest.max()), num_bins + 1)
    edges[-1] = np.inf
    chosen = []
    per_bin = max(1, n_frames // num_bins)
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = usable[(lowest >= low) & (lowest < high)]
        chosen.extend(rng.choice(in_bin, min(per_bin, in_bin.size), replace=False).tolist())
    rest = np.setdiff1d(usable, chosen)
    chosen.extend(rng.choice(rest, max(0, n_frames - len(chosen)), replace=False).tolist())
    return np.sort(np.array(chosen[:n_frames], dtype=int))


def dlc_labels(sim: dict, frames: np.ndarray, video: str, bodyparts=BODYPARTS,
               scorer: str = LABEL_SCORER) -> pd.DataFrame:
    """The true positions of ``frames`` as DeepLabCut's ``CollectedData_<scorer>`` (2.2+:
    index ``('labeled-data', video, 'img<frame>.png')``, columns ``scorer, bodyparts,
    coords``). Missing points and the rare detector jumps stay unlabelled: the jumps follow
    no error model, and the demo checks that calibration recovers the one it has."""
    index = pd.MultiIndex.from_tuples(
        [("labeled-data", video, f"img{f:04d}.png") for f in frames]
    )
    columns = pd.MultiIndex.from_product(
        [[scorer], list(bodyparts), ["x", "y"]], names=["scorer", "bodyparts", "coords"]
    )
    xy = np.where(sim["regular"][frames][..., None], sim["clean"][frames], np.nan)
    return pd.DataFrame(xy.reshape(len(frames), -1), index=index, columns=columns)


def labels_path(out_dir, session: str) -> Path:
    """Where the demo writes a session's labelled frames."""
    return Path(out_dir) / "labeled-data" / session / f"CollectedData_{LABEL_SCORER}.h5"


# --------------------------------------------------------------------------- writing


def dlc_dataframe(coordinates: np.ndarray, likelihood: np.ndarray, bodyparts=BODYPARTS,
                  scorer: str = SCORER) -> pd.DataFrame:
    """Arrange keypoints as a single-animal DeepLabCut DataFrame.

    Columns are a ``(scorer, bodyparts, coords)`` MultiIndex with coords ``x, y,
    likelihood`` per bodypart, index is the frame number, as DeepLabCut writes them.
    """
    T, K = likelihood.shape
    columns = pd.MultiIndex.from_product(
        [[scorer], list(bodyparts), ["x", "y", "likelihood"]],
        names=["scorer", "bodyparts", "coords"],
    )
    values = np.concatenate([coordinates, likelihood[:, :, None]], axis=2).reshape(T, K * 3)
    return pd.DataFrame(values, columns=columns, index=pd.RangeIndex(T))


def session_name(i: int) -> str:
    """Name of the ``i``-th demo session (0-based): ``demo_01``, ``demo_02``, ..."""
    return f"demo_{i + 1:02d}"


def pose_filename(session: str) -> str:
    """DeepLabCut-style output filename of a session."""
    return f"{session}{SCORER}.h5"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def generate_demo(out_dir, n_sessions: int = 5, n_frames: int = 1800, fps: float = 30.0,
                  seed: int = 0, n_heldout: int = 1, videos: bool = False,
                  n_labelled_frames: int = LABELLED_FRAMES) -> pd.DataFrame:
    """Write synthetic DeepLabCut sessions with known states, and their ground truth.

    Parameters
    ----------
    out_dir : str or Path
        Output directory; created if needed. Paths in ``sessions.tsv`` are written as
        ``str(Path(out_dir) / "pose" / filename)``, i.e. relative to the caller's cwd when
        ``out_dir`` is relative.
    n_sessions : int
        Number of sessions (``demo_01`` ...).
    n_frames : int
        Frames per session.
    fps : float
        Frame rate; state durations and speeds are defined per second.
    seed : int
        Seed of the true model and of all sessions.
    n_heldout : int
        The last ``n_heldout`` sessions get ``train = false``.
    videos : bool
        Also draw each session's true pose into ``out_dir/video/<session>.mp4`` (arena-sized
        frames, the keypoints' pixel coordinates) and name it in the ``video`` column. The
        drawing uses no randomness: the keypoints are the same with or without videos.
    n_labelled_frames : int
        Frames per session written as DeepLabCut labels (:func:`labels_path`); 0 for none.
        Drawn from their own seeds: the keypoints do not depend on it.

    Returns
    -------
    pandas.DataFrame
        The sessions table, as written to ``out_dir/sessions.tsv``.
    """
    if n_sessions < 1:
        raise ValueError(f"n_sessions must be >= 1, got {n_sessions}")
    if n_frames < 10:
        raise ValueError(f"n_frames must be >= 10, got {n_frames}")
    if not 0 <= n_heldout < n_sessions:
        raise ValueError(f"n_heldout must be in [0, n_sessions), got {n_heldout} of {n_sessions}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")

    out_dir = Path(out_dir)
    model = sample_true_model(seed, fps)
    # Children 1.. of the seed sequence: session i's draws do not depend on n_sessions.
    session_seeds = np.random.SeedSequence([int(seed), 1]).spawn(n_sessions)
    label_seeds = np.random.SeedSequence([int(seed), 2]).spawn(n_sessions)
    rows = []
    empirical = []
    for i in range(n_sessions):
        name = session_name(i)
        sim = simulate_session(model, np.random.default_rng(session_seeds[i]), n_frames)
        pose_path = out_dir / "pose" / pose_filename(name)
        df = dlc_dataframe(sim["coordinates"], sim["likelihood"])
        with atomic_path(pose_path) as tmp:
            # format="table" is what DeepLabCut's analyze_videos uses.
            df.to_hdf(tmp, key="df_with_missing", mode="w", format="table")
        if n_labelled_frames:
            rng = np.random.default_rng(label_seeds[i])
            frames = labelled_frames(sim, rng, min(n_labelled_frames, n_frames))
            with atomic_path(labels_path(out_dir, name)) as tmp:
                dlc_labels(sim, frames, name).to_hdf(tmp, key="keypoints", mode="w")
        truth = pd.DataFrame({"frame": np.arange(n_frames), "state": sim["states"]})
        write_table(out_dir / "ground_truth" / f"{name}.csv", truth)
        video = ""
        if videos:
            video = str(out_dir / "video" / f"{name}.mp4")
            write_pose_video(video, sim["clean"], _skeleton_indexes(),
                             (int(model["arena_px"]),) * 2, fps)
        empirical.append(sim["states"])
        rows.append(
            {
                "session": name,
                "path": str(out_dir / "pose" / pose_filename(name)),
                "format": "deeplabcut",
                "animal": "",
                "fps": f"{fps:g}",
                "group": "AB"[i % 2],
                "train": "false" if i >= n_sessions - n_heldout else "true",
                "video": video,
            }
        )
    table = pd.DataFrame(rows, columns=SESSIONS_COLUMNS)
    write_table(out_dir / "sessions.tsv", table)

    from .metrics import median_duration_frames  # local: keep module import light

    params = {k: v for k, v in model.items()}
    params.update(
        {
            "n_sessions": n_sessions,
            "n_frames": n_frames,
            "n_heldout": n_heldout,
            "sessions": [r["session"] for r in rows],
            "mean_durations_s": model["mean_durations_frames"] / fps,
            "empirical_median_duration_frames": median_duration_frames(
                {r["session"]: s for r, s in zip(rows, empirical)}
            ),
            "empirical_state_fractions": np.bincount(
                np.concatenate(empirical), minlength=model["n_states"]
            ) / (n_frames * n_sessions),
            "ar_convention": "x[t] = Ab[z[t], :, :latent_dim] @ x[t-1] + Ab[z[t], :, -1]"
            " + N(0, Q[z[t]])",
            "keypoint_convention": "ego = mean_shape + einsum('d,dkc->kc', x, C); "
            "world = R(heading) @ ego + centroid",
        }
    )
    write_text(
        out_dir / "ground_truth" / "params.json", json.dumps(_jsonable(params), indent=1) + "\n"
    )
    return table


def _skeleton_indexes() -> list[tuple[int, int]]:
    return [(BODYPARTS.index(a), BODYPARTS.index(b)) for a, b in SKELETON]


def load_ground_truth(out_dir_or_csv_dir, session: str) -> np.ndarray:
    """True state of every frame of ``session``.

    Parameters
    ----------
    out_dir_or_csv_dir : str or Path
        Either the ``out_dir`` given to :func:`generate_demo` or its ``ground_truth``
        subdirectory.
    session : str
        Session name, e.g. ``demo_01``.

    Returns
    -------
    numpy.ndarray
        Integer states, ordered by frame.
    """
    base = Path(out_dir_or_csv_dir)
    path = base / "ground_truth" / f"{session}.csv"
    if not path.exists():
        path = base / f"{session}.csv"
    if not path.exists():
        raise FileNotFoundError(f"no ground truth for session {session!r} under {base}")
    df = pd.read_csv(path).sort_values("frame")
    return df["state"].to_numpy(dtype=np.int64)


# --------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    """Command line: ``python -m kpms_flow.demo --out demo/data [options]``."""
    parser = argparse.ArgumentParser(
        prog="kpms-flow-demo",
        description="Generate synthetic DeepLabCut sessions with known AR-HMM states.",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--sessions", type=int, default=5, help="number of sessions (5)")
    parser.add_argument("--frames", type=int, default=1800, help="frames per session (1800)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--heldout", type=int, default=1,
                        help="last N sessions marked train=false (1)")
    parser.add_argument("--videos", action="store_true",
                        help="also draw each session's pose into video/<session>.mp4")
    args = parser.parse_args(argv)
    try:
        table = generate_demo(args.out, n_sessions=args.sessions, n_frames=args.frames,
                              fps=args.fps, seed=args.seed, n_heldout=args.heldout,
                              videos=args.videos)
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {len(table)} sessions to {args.out} (sessions.tsv, pose/, ground_truth/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
