"""Report figures: keypoint-moseq's own plots, fed from the pipeline's files.

keypoint-moseq's plotting functions read a project folder (``project_dir/model_name`` with
``results.h5``, and ``index.csv`` for groups) and save PDFs beside it. These helpers call
them with the pipeline's files, in a scratch project where they need one, and return
matplotlib figures; the rule scripts save them atomically as PNGs. Durations are shown in
milliseconds at the training frame rate.
"""

from __future__ import annotations

import base64
import contextlib
import html
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("kpms_flow")


def use_cpu_for_plots() -> None:
    """Plots never need an accelerator: keep JAX (imported by keypoint-moseq) on the CPU so
    that a plot job on a GPU node does not take GPU memory from a fit. Call before any
    import of jax or keypoint_moseq."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("MPLBACKEND", "Agg")


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a scratch folder beside ``path``; it replaces ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary output folder
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------- results
def load_results(paths) -> dict:
    """keypoint-moseq results of several results.h5 files (training + applied) in one dict;
    an apply batch's folder (rule apply_batch) stands for the results files in it."""
    from keypoint_moseq.io import load_hdf5

    files = []
    for path in paths:
        files += sorted(Path(path).glob("*.h5")) if Path(path).is_dir() else [path]
    merged, origin = {}, {}
    for path in files:
        for session, arrays in load_hdf5(str(path)).items():
            if session in merged:
                raise ValueError(
                    f"{path}: session {session!r} is also in {origin[session]}; a session "
                    "must have one set of results"
                )
            merged[session], origin[session] = arrays, path
    if not merged:
        raise ValueError(f"no session results in {list(map(str, paths))}")
    return merged


def syllable_labels(results: dict) -> dict[str, np.ndarray]:
    return {s: np.asarray(r["syllable"]) for s, r in results.items()}


def message_figure(title: str, message: str):
    """A figure that says why a plot could not be drawn (the report keeps the item)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    return fig


def _as_ms(ax, fps, axis="x") -> None:
    """keypoint-moseq labels durations in seconds; we pass fps/1000 so the values are ms."""
    label = (ax.get_xlabel() if axis == "x" else ax.get_ylabel()).replace("(s)", "(ms)")
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label)


# ---------------------------------------------------------------- syllable statistics
def frequency_figure(results: dict, min_frequency: float):
    """keypoint-moseq's syllable frequency histogram (syllables are numbered by frequency)."""
    import keypoint_moseq as kpms

    fig, ax = kpms.plot_syllable_frequencies(results=results, min_frequency=min_frequency)
    used = (np.bincount(np.concatenate(list(syllable_labels(results).values()))) > 0).sum()
    ax.set_title(f"Syllable frequencies ({used} syllables used; bars over {min_frequency:g})")
    ax.set_xlabel("syllable rank (0 = most frequent)")
    fig.tight_layout()
    return fig


def duration_figure(results: dict, fps: float | None):
    """keypoint-moseq's duration distribution, in ms when the frame rate is known."""
    import keypoint_moseq as kpms
    from jax_moseq.utils import get_durations

    fig, ax = kpms.plot_duration_distribution(
        results=results, fps=None if not fps else fps / 1000.0
    )
    median = float(np.median(get_durations(syllable_labels(results))))
    if fps:
        _as_ms(ax, fps)
        ax.set_title(
            f"Syllable durations (median {median:g} frames = {1000 * median / fps:.0f} ms)"
        )
    else:
        ax.set_title(f"Syllable durations (median {median:g} frames; fps unknown)")
    fig.tight_layout()
    return fig


def progress_figure(checkpoint_path, fps: float | None, name: str):
    """keypoint-moseq's fitting-progress figure for the last snapshot of a fit."""
    import keypoint_moseq as kpms

    model, data, _, iteration = kpms.load_checkpoint(path=str(checkpoint_path))
    # The state-sequence window is drawn with the global np.random (keypoint-moseq-facts.md).
    np.random.seed(0)
    fig, axs = kpms.plot_progress(
        model,
        data,
        str(checkpoint_path),
        iteration,
        model_name=name,
        savefig=False,
        fps=None if not fps else fps / 1000.0,
    )
    if fps:
        _as_ms(axs[1], fps)
        if len(axs) > 2:
            _as_ms(axs[2], fps, axis="y")
    return fig


# ---------------------------------------------------------------- trajectories
def typical_trajectories(coordinates, results, kcfg, fps, min_frequency, window_s=(0.167, 0.5)):
    """Each syllable's median pose trajectory around its onsets (keypoint-moseq).

    Every instance is used (no density sampling), so every syllable above ``min_frequency``
    gets a trajectory even in short recordings. Returns {} when no syllable qualifies.
    """
    import keypoint_moseq as kpms

    fps = fps or 30.0
    try:
        return kpms.get_typical_trajectories(
            coordinates,
            results,
            before_onset_frames=round(window_s[0] * fps),
            after_onset_frames=round(window_s[1] * fps),
            min_frequency=min_frequency,
            min_instance_duration_frames=max(1, round(0.1 * fps)),
            bodyparts=kcfg["bodyparts"],
            use_bodyparts=kcfg["use_bodyparts"],
            density_sample=False,
            sampling_options={"n_neighbors": 50},
        )
    except ValueError as error:  # no syllable with instances long enough
        log.warning("no typical trajectories: %s", error)
        return {}


def trajectory_figures(trajectories: dict, kcfg) -> dict:
    """keypoint-moseq's trajectory plots: one figure per syllable and one with them all.

    3D keypoints are drawn in their x-y projection.
    """
    from keypoint_moseq.util import get_edges
    from keypoint_moseq.viz import get_limits, plot_trajectories

    syllables = sorted(trajectories)
    Xs = np.stack([trajectories[s] for s in syllables])[..., :2] * np.array([1, -1])  # y up
    lims = get_limits(Xs, pctl=0, left=0.1, right=0.1, top=0.2, bottom=0.2)
    edges = get_edges(kcfg["use_bodyparts"], kcfg["skeleton"]) if kcfg["skeleton"] else []
    figures = {}
    for s, X in zip(syllables, Xs):
        fig, _, _ = plot_trajectories([f"Syllable {s}"], X[None], lims, edges=edges)
        figures[f"syllable{s}"] = fig
    fig, _, _ = plot_trajectories([f"Syllable {s}" for s in syllables], Xs, lims, edges=edges)
    figures["all_syllables"] = fig
    return figures


def dendrogram_figure(coordinates, results, kcfg, fps, min_frequency):
    """keypoint-moseq's syllable similarity dendrogram (distances between typical
    trajectories)."""
    import keypoint_moseq as kpms
    import matplotlib.pyplot as plt

    trajectories = typical_trajectories(coordinates, results, kcfg, fps, min_frequency)
    if len(trajectories) < 2:
        return message_figure(
            "Syllable similarity",
            f"{len(trajectories)} syllable(s) above frequency {min_frequency:g} with "
            "instances of 0.1 s or more: nothing to cluster",
        )
    with tempfile.TemporaryDirectory(prefix="kpms_flow_dendrogram_") as scratch:
        kpms.plot_similarity_dendrogram(
            coordinates,
            results,
            save_path=str(Path(scratch, "dendrogram")),
            fps=fps or 30.0,
            min_frequency=min_frequency,
            bodyparts=kcfg["bodyparts"],
            use_bodyparts=kcfg["use_bodyparts"],
            figsize=(max(6, 0.35 * len(trajectories)), 3.5),
        )
        fig = plt.gcf()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- groups and transitions
@contextlib.contextmanager
def scratch_project(results: dict, groups: dict[str, str]):
    """A keypoint-moseq project folder holding ``results`` and an index.csv of ``groups``.

    Yields ``(project_dir, model_name)``. Sessions without a group are in "default", as
    keypoint-moseq puts them.
    """
    from keypoint_moseq.io import save_hdf5

    with tempfile.TemporaryDirectory(prefix="kpms_flow_project_") as project:
        model = "model"
        Path(project, model).mkdir()
        save_hdf5(str(Path(project, model, "results.h5")), results)
        index = pd.DataFrame(
            {"name": list(results), "group": [groups.get(s) or "default" for s in results]}
        )
        index.to_csv(Path(project, "index.csv"), index=False)
        yield project, model


def transition_figure(project_dir, model_name, min_frequency: float):
    """keypoint-moseq's bigram transition matrices, one panel per group."""
    import keypoint_moseq as kpms
    import matplotlib.pyplot as plt

    trans_mats, _, groups, syll_include = kpms.generate_transition_matrices(
        project_dir, model_name, normalize="bigram", min_frequency=min_frequency
    )
    if len(syll_include) == 0:
        return message_figure("Transition matrices", f"no syllable above {min_frequency:g}")
    size = max(3.0, 0.25 * len(syll_include))
    kpms.visualize_transition_bigram(
        project_dir,
        model_name,
        groups,
        trans_mats,
        syll_include,
        save_dir=str(Path(project_dir, "figures")),
        figsize=(size * len(groups) + 1.5, size),
    )
    return plt.gcf()


def group_statistics(project_dir, model_name, results, fps, min_frequency):
    """keypoint-moseq's moseq_df (per frame) and stats_df (per group, session, syllable).

    Velocities are per second at ``fps`` and durations are in seconds (keypoint-moseq).
    """
    import keypoint_moseq as kpms

    moseq_df = kpms.compute_moseq_df(project_dir, model_name, results, fps=fps or 30.0)
    stats_df = kpms.compute_stats_df(moseq_df, min_frequency=min_frequency)
    return moseq_df, stats_df


def group_stat_figure(stats_df, project_dir, model_name, stat: str):
    """keypoint-moseq's per-group syllable statistic with SEM; significance (Kruskal-Wallis
    and Dunn's tests) is marked only when there are groups to compare."""
    import keypoint_moseq as kpms

    n_groups = stats_df["group"].nunique()
    n_syllables = stats_df["syllable"].nunique()
    # keypoint-moseq drops text columns by dtype "object"; pandas 3 reads text as "str".
    text = [c for c in stats_df.columns if pd.api.types.is_string_dtype(stats_df[c])]
    stats_df = stats_df.astype({c: object for c in text})
    fig, _ = kpms.plot_syll_stats_with_sem(
        stats_df,
        project_dir,
        model_name,
        save_dir=str(Path(project_dir, "figures")),
        plot_sig=n_groups > 1,
        stat=stat,
        figsize=(max(6, 0.3 * n_syllables + 2), 4),
    )
    ax = fig.axes[0]
    if stat == "duration":
        ax.set_ylabel("mean duration (s)")
    groups = ", ".join(sorted(map(str, stats_df["group"].unique())))
    ax.set_title(f"Syllable {stat} by group ({groups}); mean and SEM over sessions")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- ground truth
def ground_truth_figure(syllables: dict, truth: dict, min_frequency: float):
    """keypoint-moseq's confusion matrix between fitted syllables and true states, for the
    sessions with both (frames beyond the shorter of the two are left out)."""
    import keypoint_moseq as kpms

    from .metrics import nmi

    common = sorted(s for s in syllables if s in truth)
    if not common:
        raise ValueError("no session has both syllables and ground truth")
    fitted, true = {}, {}
    for s in common:
        n = min(len(syllables[s]), len(truth[s]))
        fitted[s] = {"syllable": np.asarray(syllables[s][:n], dtype=int)}
        true[s] = {"syllable": np.asarray(truth[s][:n], dtype=int)}
    fig, ax = kpms.plot_confusion_matrix(fitted, true, min_frequency=min_frequency)
    score = nmi(
        np.concatenate([true[s]["syllable"] for s in common]),
        np.concatenate([fitted[s]["syllable"] for s in common]),
    )
    ax.set_ylabel("fitted syllable")
    ax.set_xlabel("true state")
    ax.set_title(f"Syllables vs true states ({len(common)} sessions, NMI {score:.2f})")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- HTML views
_STYLE = """
body { font-family: sans-serif; margin: 1em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #eee; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1em 1em 0; }
figcaption { font-size: 13px; text-align: center; }
"""


def html_page(title: str, body: str, note: str = "") -> str:
    note_html = f"<p>{html.escape(note)}</p>" if note else ""
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_STYLE}</style></head>\n<body><h2>{html.escape(title)}</h2>"
        f"{note_html}\n{body}\n</body></html>\n"
    )


def table_html(frame: pd.DataFrame, title: str, note: str = "") -> str:
    """A readable, self-contained HTML view of a table (floats to 4 significant digits)."""
    body = frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)
    return html_page(title, body, note)


def video_gallery_html(videos: dict[str, Path], title: str, note: str = "") -> str:
    """One page showing every video (embedded, so the page works inside the report)."""
    figures = []
    for name, path in videos.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        figures.append(
            f"<figure><video controls loop muted autoplay playsinline "
            f"src='data:video/mp4;base64,{data}'></video>"
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
        )
    body = "\n".join(figures) or "<p>No syllable had enough instances for a grid movie.</p>"
    return html_page(title, body, note)


# ---------------------------------------------------------------- grid movies
def grid_movies(results, video_paths, coordinates, kcfg, fps, output_dir, options) -> dict:
    """keypoint-moseq's grid movies for the sessions with videos; returns the instances
    shown per syllable ({} when no syllable has rows x cols instances)."""
    import keypoint_moseq as kpms

    results = {s: r for s, r in results.items() if s in video_paths}
    coordinates = {s: coordinates[s] for s in results}
    np.random.seed(0)  # instance sampling uses the global np.random
    sampled = kpms.generate_grid_movies(
        results,
        output_dir=str(output_dir),
        video_paths={s: str(video_paths[s]) for s in results},
        coordinates=coordinates,
        bodyparts=kcfg["bodyparts"],
        use_bodyparts=kcfg["use_bodyparts"],
        skeleton=kcfg["skeleton"],
        fps=fps,
        rows=options["rows"],
        cols=options["cols"],
        before_onset_sec=options["before_onset_sec"],
        after_onset_sec=options["after_onset_sec"],
        min_frequency=options["min_frequency"],
        max_video_size=options["max_video_size"],
        overlay_keypoints=options["overlay_keypoints"],
    )
    return sampled or {}
