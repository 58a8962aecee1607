"""The demo's true generative model: a keypoint-MoSeq-shaped AR-HMM with known states,
the pose it drives, and a tracker whose error grows as its confidence falls (the noise model
keypoint-moseq's calibration assumes). kpms_flow.demo writes sessions drawn from it."""

from __future__ import annotations

import numpy as np

BODYPARTS = ["nose", "left_ear", "right_ear", "neck", "spine", "hips", "tailbase"]
DROP_PROB = 0.012  # isolated missing points
BURSTS_PER_MINUTE = 6.0  # short occlusion bursts
OUTLIER_PROB = 0.002
BURN_IN_S = 5.0
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
