"""Model selection over restarts: expected marginal likelihood, stability, convergence.

keypoint-moseq's documentation ("Fitting multiple models", "Selecting a model") fits many
models that differ only in their seed and keeps the one with the highest expected marginal
likelihood (EML, :func:`keypoint_moseq.expected_marginal_likelihoods`). This module
computes the same scores with bounded memory (:func:`eml_scores`), and adds what the
documentation leaves to the user:

* **stability**: how reproducible the syllables are across restarts (pairwise normalized
  mutual information of the per-frame labels, :func:`pairwise_nmi`; for every frequent
  syllable of the chosen model, the best-matching syllable of every other restart and
  their overlap, :func:`syllable_reproducibility`);
* **convergence**: the model's log joint likelihood at every saved iteration
  (:func:`convergence_trace`) and whether its last part is still trending
  (:func:`still_trending`).

:func:`select_job` is the entry point of the ``select_model`` rule. Every checkpoint here
is a keypoint-moseq ``checkpoint.h5`` (``model_snapshots/<iteration>``, ``data``,
``metadata``); the restarts of one run are fits of the same training data.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .convergence import TREND_MIN_POINTS, convergence_trace, still_trending
from .stability import (
    REPRODUCED_JACCARD,
    pairwise_nmi,
    restart_labels,
    syllable_reproducibility,
)

log = logging.getLogger("kpms_flow")

# Frames per call of jax-moseq's marginal_log_likelihood in eml_scores: its temporaries
# (num_states log-likelihoods per frame) stay near 100,000 x num_states x 8 bytes.
EML_FRAMES_PER_CALL = 100_000


# ---------------------------------------------------------------- reading checkpoints
def last_iteration(checkpoint_path) -> int:
    """The iteration of a checkpoint's last snapshot, as keypoint-moseq's
    ``load_checkpoint`` finds it (the largest integer name under ``model_snapshots``)."""
    import h5py

    with h5py.File(checkpoint_path, "r") as f:
        if "model_snapshots" not in f or not len(f["model_snapshots"]):
            raise ValueError(f"{checkpoint_path}: no model snapshot in this checkpoint")
        return int(np.sort([int(i) for i in f["model_snapshots"]])[-1])


def _snapshot_part(checkpoint_path, iteration: int, part: str):
    """One part (``params``, ``states/z``, ...) of one snapshot, read as keypoint-moseq
    reads it (``load_hdf5``), without the rest of the file."""
    from keypoint_moseq.io import load_hdf5

    return load_hdf5(str(checkpoint_path), f"model_snapshots/{iteration}/{part}")


def _read_mask(checkpoint_path) -> np.ndarray:
    from keypoint_moseq.io import load_hdf5

    return load_hdf5(str(checkpoint_path), "data/mask")


# ---------------------------------------------------------------- EML
def eml_scores(checkpoint_paths, frames_per_call: int = EML_FRAMES_PER_CALL):
    """Expected marginal likelihood of every model, with bounded memory.

    The scores and standard errors of keypoint-moseq 0.8.1's
    :func:`keypoint_moseq.expected_marginal_likelihoods`: with ``theta^i`` the AR
    parameters and transition matrix (``Ab``, ``Q``, ``pi``) of model ``i`` and ``x^j``
    the latent trajectories of model ``j``, ``score_i = 1/(N-1) sum_{j != i}
    log P(x^j | theta^i)``, each term from jax-moseq's own ``marginal_log_likelihood``,
    on the last snapshot of every checkpoint.

    keypoint-moseq's function loads every checkpoint whole (model and data) and keeps
    every model's ``x`` at once. Here the memory does not grow with the number of models
    and, beyond the mask, not with the number of frames: the mask is read once, the small
    parameters of every model are kept, and one model's ``x`` is read from disk a block
    of segments at a time (``frames_per_call`` frames), each block scored under every
    other model's parameters. The sum over segments is the same sum keypoint-moseq takes,
    grouped in blocks: the scores agree to floating-point rounding.

    Parameters
    ----------
    checkpoint_paths : sequence of path-like
        keypoint-moseq checkpoints of models fitted to the same data.
    frames_per_call : int, optional
        Frames (whole segments, at least one) per call of ``marginal_log_likelihood``.

    Returns
    -------
    scores : numpy.ndarray of shape (N,)
        Expected marginal likelihood score of each model.
    standard_errors : numpy.ndarray of shape (N,)
        Standard error of each score (keypoint-moseq's formula).

    Raises
    ------
    ValueError
        Fewer than two checkpoints, or checkpoints fitted to different data (the mask's
        shape or values differ; the message names the file).
    """
    import h5py
    import jax.numpy as jnp
    import keypoint_moseq  # noqa: F401  (x64 on before jax-moseq runs)
    from jax_moseq.models.arhmm import marginal_log_likelihood

    paths = [str(p) for p in checkpoint_paths]
    num_models = len(paths)
    if num_models < 2:
        raise ValueError(
            f"EML needs at least 2 models (it scores each model on the others' latent "
            f"trajectories); got {num_models}: {paths}"
        )
    mask = _read_mask(paths[0])
    iterations = [last_iteration(p) for p in paths]
    params = []
    for path, iteration in zip(paths, iterations):
        if path != paths[0]:
            other = _read_mask(path)
            if other.shape != mask.shape:
                raise ValueError(
                    f"{path}: its data mask has shape {other.shape}, {paths[0]}'s has "
                    f"{mask.shape}: EML compares models fitted to the same data"
                )
            if not np.array_equal(other, mask):
                raise ValueError(
                    f"{path}: its data mask differs from {paths[0]}'s: EML compares "
                    "models fitted to the same data"
                )
            del other
        p = _snapshot_part(path, iteration, "params")
        params.append({k: jnp.array(p[k]) for k in ("Ab", "Q", "pi")})

    num_segments, seg_length = mask.shape
    rows = max(1, int(frames_per_call) // max(int(seg_length), 1))
    mlls = np.zeros((num_models, num_models))
    for j, (path, iteration) in enumerate(zip(paths, iterations)):
        with h5py.File(path, "r") as f:
            x = f[f"model_snapshots/{iteration}/states/x"]
            if x.shape[:2] != mask.shape:
                raise ValueError(
                    f"{path}: latent states x of shape {x.shape} do not match the data "
                    f"mask {mask.shape}"
                )
            for start in range(0, num_segments, rows):
                block = slice(start, min(start + rows, num_segments))
                x_block = jnp.array(np.asarray(x[block]))
                mask_block = jnp.array(mask[block])
                for i in range(num_models):
                    if i != j:
                        mlls[i, j] += marginal_log_likelihood(
                            mask_block, x_block, params[i]["Ab"], params[i]["Q"], params[i]["pi"]
                        ).item()
                del x_block, mask_block
        _progress()
    # keypoint-moseq's formula, unchanged.
    scores = mlls.sum(1) / (num_models - 1)
    variances = (mlls**2).sum(1) / (num_models - 1) - scores**2
    standard_errors = np.sqrt(variances / (num_models - 1))
    return scores, standard_errors


def _progress() -> None:
    """Tell the watchdog this job is alive (a no-op outside a watched job)."""
    from .watchdog import beat

    beat()




# ---------------------------------------------------------------- the choice
def choose(eml_table: pd.DataFrame) -> str:
    """The restart with the highest EML (the first one on a tie).

    Parameters
    ----------
    eml_table : pandas.DataFrame
        Columns ``restart`` and ``eml``.

    Returns
    -------
    str
        The chosen restart's name.
    """
    scores = pd.to_numeric(eml_table["eml"], errors="coerce")
    if scores.isna().all():
        raise ValueError("no restart has a finite EML score: nothing to choose from")
    return str(eml_table["restart"].iloc[int(np.nanargmax(scores.to_numpy(float)))])


def in_window(duration_ms, target_duration_ms) -> bool | None:
    """Whether a median duration lies in ``[low, high]`` ms (None: no window or no
    duration known)."""
    if target_duration_ms is None or duration_ms is None or not np.isfinite(duration_ms):
        return None
    low, high = target_duration_ms
    return bool(low <= float(duration_ms) <= high)


def window_note(eml_table: pd.DataFrame, chosen: str, target_duration_ms) -> str | None:
    """The summary line when the chosen restart's median duration lies outside the target
    window while another restart's lies inside (None otherwise).

    Parameters
    ----------
    eml_table : pandas.DataFrame
        Columns ``restart`` and ``median_duration_ms``.
    chosen : str
        The chosen restart.
    target_duration_ms : [low, high] or None
        The target window of median syllable durations.
    """
    if target_duration_ms is None:
        return None
    inside = {
        str(row.restart): in_window(row.median_duration_ms, target_duration_ms)
        for row in eml_table.itertuples()
    }
    if inside.get(chosen) is not False:
        return None
    others = [name for name, ok in inside.items() if ok and name != chosen]
    if not others:
        return None
    duration = float(eml_table.loc[eml_table["restart"] == chosen, "median_duration_ms"].iloc[0])
    low, high = target_duration_ms
    return (
        f"the chosen model ({chosen}, highest EML) has a median syllable duration of "
        f"{duration:.0f} ms, outside the target window {low:g}-{high:g} ms, while "
        f"{', '.join(others)} lie(s) inside it; EML decides, the window is advice "
        "(see results/selection/eml.tsv)"
    )


def summary_lines(
    eml_table: pd.DataFrame,
    pairwise: pd.DataFrame,
    stability: pd.DataFrame,
    convergence: pd.DataFrame,
    target_duration_ms=None,
) -> list[str]:
    """The run summary's lines about model selection, from the tables of :func:`select_job`.

    Parameters
    ----------
    eml_table, pairwise, stability, convergence : pandas.DataFrame
        ``eml.tsv``, the pairwise NMI table, the per-syllable table and the convergence
        table (with its ``still_trending`` column).
    target_duration_ms : [low, high] or None
        The target window of median durations.
    """
    chosen = str(eml_table.loc[eml_table["chosen"].astype(bool), "restart"].iloc[0])
    lines = [f"chosen model: {chosen} of {len(eml_table)} restarts (highest EML)"]
    note = window_note(eml_table, chosen, target_duration_ms)
    if note:
        lines.append(note)
    if len(pairwise):
        lines.append(
            f"stability: median pairwise NMI between restarts {pairwise['nmi'].median():.2f}; "
            f"{int(stability['reproduced'].sum())} of {len(stability)} frequent syllables of "
            f"the chosen model reproduced (Jaccard >= {REPRODUCED_JACCARD:g}) in most other "
            "restarts"
        )
    trending = sorted(convergence.loc[convergence["still_trending"].astype(bool), "restart"].unique())
    if trending:
        lines.append(
            f"convergence: the log-likelihood of {', '.join(trending)} was still trending "
            "over the last quarter of saved iterations: consider more iterations (num_iters)"
        )
    snapshots = int(convergence.groupby("restart").size().min())
    if snapshots < TREND_MIN_POINTS:
        lines.append(
            f"convergence: {snapshots} saved iterations per fit are too few to judge a trend "
            f"(at least {TREND_MIN_POINTS} needed; see save_every_n_iters)"
        )
    return lines


# ---------------------------------------------------------------- figures
def eml_figure(eml_table: pd.DataFrame):
    """keypoint-moseq's ``plot_eml_scores`` of the restarts, the chosen one named."""
    import keypoint_moseq as kpms

    fig, ax = kpms.plot_eml_scores(
        eml_table["eml"].to_numpy(float),
        eml_table["eml_std_err"].to_numpy(float),
        list(eml_table["restart"]),
    )
    chosen = eml_table.loc[eml_table["chosen"].astype(bool), "restart"]
    if len(chosen):
        ax.set_title(f"chosen: {chosen.iloc[0]}", fontsize=9)
    fig.tight_layout()
    return fig


def stability_figure(pairwise: pd.DataFrame, stability: pd.DataFrame, names: list[str]):
    """Pairwise NMI between restarts (left) and, for each frequent syllable of the chosen
    model, its best match's Jaccard overlap in every other restart (right)."""
    import matplotlib.pyplot as plt

    n = len(names)
    matrix = np.eye(n)
    index = {name: k for k, name in enumerate(names)}
    for row in pairwise.itertuples():
        a, b = index[row.restart_a], index[row.restart_b]
        matrix[a, b] = matrix[b, a] = row.nmi
    columns = [c for c in stability.columns if c.startswith("jaccard_")]
    jaccard = stability[columns].to_numpy(float).T if columns else np.zeros((0, len(stability)))
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(4 + 0.35 * n + 0.3 * len(stability), 3.8),
        gridspec_kw={"width_ratios": [max(n, 2), max(len(stability), 2)]},
    )
    image = left.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    left.set_xticks(range(n), names, rotation=90, fontsize=7)
    left.set_yticks(range(n), names, fontsize=7)
    for a in range(n):
        for b in range(n):
            left.text(b, a, f"{matrix[a, b]:.2f}", ha="center", va="center", fontsize=6,
                      color="w" if matrix[a, b] < 0.6 else "k")
    left.set_title("pairwise NMI", fontsize=9)
    fig.colorbar(image, ax=left, fraction=0.046)
    image = right.imshow(jaccard, vmin=0, vmax=1, cmap="magma", aspect="auto")
    right.set_xticks(range(len(stability)), [str(s) for s in stability["syllable"]], fontsize=7)
    right.set_yticks(range(len(columns)), [c[len("jaccard_"):] for c in columns], fontsize=7)
    right.set_xlabel("syllable of the chosen model (fitted index), most frequent first", fontsize=8)
    right.set_title(f"best-match Jaccard overlap (reproduced: >= {REPRODUCED_JACCARD:g})", fontsize=9)
    fig.colorbar(image, ax=right, fraction=0.046)
    fig.tight_layout()
    return fig


def convergence_figure(convergence: pd.DataFrame):
    """Log joint likelihood against iteration, one line per restart (dashed: still
    trending)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, trace in convergence.groupby("restart", sort=False):
        trending = bool(trace["still_trending"].iloc[0])
        ax.plot(
            trace["iteration"], trace["log_likelihood"], marker="o", markersize=3,
            linestyle="--" if trending else "-",
            label=f"{name} (still trending)" if trending else name,
        )
    ax.set_xlabel("iteration")
    ax.set_ylabel("log joint likelihood")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the rule's entry point
def _metrics_row(path) -> dict:
    table = pd.read_csv(path, sep="\t")
    missing = {"kappa", "median_duration_ms", "syllables"} - set(table.columns)
    if len(table) != 1 or missing:
        raise ValueError(
            f"{path}: expected one row of fit metrics with kappa, median_duration_ms and "
            f"syllables; got {len(table)} row(s), missing {sorted(missing)}"
        )
    return table.iloc[0].to_dict()


def select_job(smk) -> None:
    """Run the ``select_model`` rule's job from its Snakemake object.

    Parameters
    ----------
    smk : snakemake.script.Snakemake
        Inputs: ``checkpoints`` (one full-model checkpoint per restart, in restart order),
        ``metrics`` (each fit's one-row metrics TSV, same order), ``data``
        (results/data/data.h5). Params: ``restarts`` (names), ``seeds`` (ints, same
        order), ``target_duration_ms`` ([low, high] or None). Outputs: ``eml``,
        ``eml_plot``, ``stability``, ``pairwise``, ``stability_plot``, ``convergence``,
        ``convergence_plot``, ``chosen`` (a copy of the chosen restart's checkpoint).
    """
    from .runtime import start_jax_job

    start_jax_job(smk)
    _select(smk)


def _select(smk) -> None:
    from .atomic import copy_file, save_figure, write_table
    from .model import load_training_data

    inp, out, p = smk.input, smk.output, smk.params
    checkpoints = [str(c) for c in inp.checkpoints]
    metrics = [str(m) for m in inp.metrics]
    names, seeds = [str(r) for r in p.restarts], [int(s) for s in p.seeds]
    target = list(p.target_duration_ms) if p.target_duration_ms else None
    if not (len(checkpoints) == len(metrics) == len(names) == len(seeds)):
        raise ValueError(
            f"select_model: {len(checkpoints)} checkpoints, {len(metrics)} metrics tables, "
            f"{len(names)} restart names and {len(seeds)} seeds: one of each per restart"
        )

    log.info("EML over %d restarts: %s", len(names), ", ".join(names))
    scores, errors = eml_scores(checkpoints)
    rows = []
    for name, seed, checkpoint, metric, score, error in zip(
        names, seeds, checkpoints, metrics, scores, errors
    ):
        row = _metrics_row(metric)
        rows.append(
            {
                "restart": name,
                "seed": seed,
                "kappa": float(row["kappa"]),
                "eml": float(score),
                "eml_std_err": float(error),
                "median_duration_ms": float(row["median_duration_ms"]),
                "in_target_window": in_window(float(row["median_duration_ms"]), target),
                "syllables": int(row["syllables"]),
            }
        )
    eml_table = pd.DataFrame(rows)
    chosen = choose(eml_table)
    eml_table["chosen"] = eml_table["restart"] == chosen
    log.info("EML table:\n%s", eml_table.to_string(index=False))
    note = window_note(eml_table, chosen, target)
    if note:
        log.warning(note)

    labels = {name: restart_labels(checkpoint) for name, checkpoint in zip(names, checkpoints)}
    pairwise = pairwise_nmi(labels)
    stability = syllable_reproducibility(labels, chosen)
    del labels

    data, _, _, _, _ = load_training_data(inp.data)
    if not np.array_equal(np.asarray(data["mask"]), _read_mask(checkpoints[0])):
        raise ValueError(
            f"{inp.data}: its mask differs from the data stored in {checkpoints[0]}: the "
            "restarts were fitted to other data"
        )
    traces = []
    for name, checkpoint in zip(names, checkpoints):
        trace = convergence_trace(checkpoint, data)
        trending = still_trending(trace)
        trace.insert(0, "restart", name)
        trace["still_trending"] = trending
        traces.append(trace)
    convergence = pd.concat(traces, ignore_index=True)
    del data

    for line in summary_lines(eml_table, pairwise, stability, convergence, target):
        log.info("%s", line)

    write_table(out.eml, eml_table)
    write_table(out.pairwise, pairwise)
    write_table(out.stability, stability)
    write_table(out.convergence, convergence)
    save_figure(out.eml_plot, eml_figure(eml_table), dpi=120)
    save_figure(out.stability_plot, stability_figure(pairwise, stability, names), dpi=120)
    save_figure(out.convergence_plot, convergence_figure(convergence), dpi=120)
    # A copy, not a hard link: Snakemake touches outputs after the job, and touching a link
    # would make the input checkpoint newer than this job's other outputs (a clock-skew error).
    copy_file(checkpoints[names.index(chosen)], out.chosen)
    log.info("chosen checkpoint %s -> %s", checkpoints[names.index(chosen)], out.chosen)
