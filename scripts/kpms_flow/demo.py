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
from .demo_model import (  # the true model and tracker; importable from here as before
    BODYPARTS,
    LABELLED_FRAMES,
    SKELETON,
    sample_true_model,
    simulate_session,
)
from .video import write_pose_video

SCORER = "DLC_resnet50_demoSep1shuffle1_1000"
SESSIONS_COLUMNS = ["session", "path", "format", "animal", "fps", "group", "train", "video"]
LABEL_SCORER = "demo"



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
