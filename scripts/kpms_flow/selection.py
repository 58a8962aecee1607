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
import math

import numpy as np
import pandas as pd

log = logging.getLogger("kpms_flow")

# keypoint-moseq's plots ignore syllables under 0.5 % of frames.
MIN_FREQUENCY = 0.005
# A syllable is reproduced in a restart when its best match covers at least this Jaccard
# overlap of their frames (the figure: 2 of 15 frequent syllables reached 0.5).
REPRODUCED_JACCARD = 0.5
# Fewer saved snapshots than this say nothing about a trend (still_trending).
TREND_MIN_POINTS = 4
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


# ---------------------------------------------------------------- stability
def restart_labels(checkpoint_path) -> np.ndarray:
    """Per-frame syllables of a checkpoint's last snapshot, all sessions concatenated.

    The labels ``extract_results`` would deliver: ``z`` is shorter than the data by the AR
    lag (jax-moseq labels frame ``t`` of a segment with ``z[t - nlags]``), so it is padded
    at the start with its first value, then the overlapping segments are joined back into
    sessions (jax-moseq's ``unbatch``), which drops the padding frames (``mask == 0``).
    Sessions follow in sorted name order, so labels of restarts fitted to the same data
    line up frame by frame.

    Parameters
    ----------
    checkpoint_path : path-like
        A keypoint-moseq checkpoint.

    Returns
    -------
    numpy.ndarray of int32, shape (frames,)
        Fitted state index of every frame (not reindexed by frequency).
    """
    import h5py
    from jax_moseq.utils import unbatch
    from keypoint_moseq.io import load_hdf5

    iteration = last_iteration(checkpoint_path)
    z = np.asarray(_snapshot_part(checkpoint_path, iteration, "states/z"))
    with h5py.File(checkpoint_path, "r") as f:
        frames = f[f"model_snapshots/{iteration}/states/x"].shape[1]
    keys, bounds = load_hdf5(str(checkpoint_path), "metadata")
    nlags = frames - z.shape[1]
    padded = np.pad(z, ((0, 0), (nlags, 0)), mode="edge")
    sessions = unbatch(padded, np.asarray(keys), np.asarray(bounds))
    return np.concatenate([sessions[key] for key in sorted(sessions)]).astype(np.int32)


def _check_lengths(labels: dict) -> None:
    lengths = {name: len(v) for name, v in labels.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"restarts' labels cover different numbers of frames {lengths}: they were not "
            "fitted to the same data"
        )


def pairwise_nmi(labels: dict) -> pd.DataFrame:
    """Normalized mutual information between the per-frame labels of every two restarts.

    Parameters
    ----------
    labels : dict of str to numpy.ndarray
        Restart name -> per-frame labels (:func:`restart_labels`), equal lengths.

    Returns
    -------
    pandas.DataFrame
        Columns ``restart_a``, ``restart_b``, ``nmi``: one row per unordered pair, in the
        order of ``labels`` (scikit-learn's ``normalized_mutual_info_score``, arithmetic
        normalization: 1 for the same partition whatever the syllable numbers).
    """
    from sklearn.metrics import normalized_mutual_info_score

    _check_lengths(labels)
    names = list(labels)
    rows = [
        {
            "restart_a": a,
            "restart_b": b,
            "nmi": float(normalized_mutual_info_score(labels[a], labels[b])),
        }
        for k, a in enumerate(names)
        for b in names[k + 1 :]
    ]
    return pd.DataFrame(rows, columns=["restart_a", "restart_b", "nmi"])


def syllable_reproducibility(
    labels: dict, chosen: str, min_frequency: float = MIN_FREQUENCY
) -> pd.DataFrame:
    """How well every frequent syllable of the chosen model reappears in the other restarts.

    For a syllable ``s`` of the chosen model (frames ``A``) and another restart, its best
    match is that restart's syllable ``t`` (frames ``B``) with the highest Jaccard overlap
    ``|A & B| / |A | B|``; ``s`` is reproduced there when that overlap is at least
    ``REPRODUCED_JACCARD`` (0.5), and reproduced overall when that holds in more than half
    of the other restarts.

    Parameters
    ----------
    labels : dict of str to numpy.ndarray
        Restart name -> per-frame labels, equal lengths.
    chosen : str
        The chosen restart (a key of ``labels``).
    min_frequency : float, optional
        Syllables of the chosen model on fewer frames than this fraction are left out.

    Returns
    -------
    pandas.DataFrame
        One row per frequent syllable, most frequent first: ``syllable`` (the chosen
        model's fitted state index), ``frequency`` (fraction of frames), for every other
        restart ``r`` the columns ``match_<r>`` and ``jaccard_<r>``, then
        ``reproduced_in`` (restarts with Jaccard >= 0.5), ``other_restarts`` and
        ``reproduced`` (in more than half of them).
    """
    if chosen not in labels:
        raise ValueError(f"chosen restart {chosen!r} is not among {list(labels)}")
    _check_lengths(labels)
    reference = np.asarray(labels[chosen])
    syllables, counts = np.unique(reference, return_counts=True)
    frequency = counts / reference.size
    keep = frequency >= min_frequency
    order = np.argsort(-frequency[keep], kind="stable")
    syllables, counts, frequency = syllables[keep][order], counts[keep][order], frequency[keep][order]
    table = pd.DataFrame({"syllable": syllables.astype(int), "frequency": frequency})
    others = [name for name in labels if name != chosen]
    reproduced_in = np.zeros(len(syllables), dtype=int)
    for name in others:
        other = np.asarray(labels[name])
        other_ids, other_index = np.unique(other, return_inverse=True)
        other_counts = np.bincount(other_index, minlength=other_ids.size)
        best_match, best = [], []
        for syllable, count in zip(syllables, counts):
            # |A & B| for every syllable B of the other restart at once.
            overlap = np.bincount(other_index[reference == syllable], minlength=other_ids.size)
            jaccard = overlap / (count + other_counts - overlap)
            k = int(np.argmax(jaccard))
            best_match.append(int(other_ids[k]))
            best.append(float(jaccard[k]))
        table[f"match_{name}"] = best_match
        table[f"jaccard_{name}"] = best
        reproduced_in += np.asarray(best) >= REPRODUCED_JACCARD
    table["reproduced_in"] = reproduced_in
    table["other_restarts"] = len(others)
    table["reproduced"] = reproduced_in > len(others) / 2
    return table


# ---------------------------------------------------------------- convergence
def _log_joint_likelihood(data, model) -> float:
    """Sum of jax-moseq's log joint likelihood terms of one snapshot on its data."""
    params = model["params"]
    if "delta_h" in params:
        # A location-aware model (keypoint-moseq's location_aware=True).
        from jax_moseq.models.allo_keypoint_slds import log_joint_likelihood

        terms = log_joint_likelihood(
            **data,
            **model["states"],
            **params,
            **model["hypparams"]["obs_hypparams"],
            s_0=model["noise_prior"],
        )
    else:
        from jax_moseq.models.keypoint_slds import model_likelihood

        terms = model_likelihood(data, **model)
    return float(sum(float(value) for value in terms.values()))


def convergence_trace(checkpoint_path, data: dict | None = None) -> pd.DataFrame:
    """The model's log joint likelihood at every saved snapshot of a fit.

    keypoint-moseq tracks no likelihood while fitting; jax-moseq's
    ``keypoint_slds.model_likelihood`` (``log_joint_likelihood``) gives the log joint
    density of the sampler's state, as terms: ``z`` (syllable transitions under ``pi``),
    ``x`` (latent trajectories under the AR dynamics ``Ab``, ``Q``), ``Y`` (keypoints
    given ``x``, centroid ``v``, heading ``h``, noise scales ``s``), ``s`` (noise scales
    under their prior) and ``v`` (centroid movement). The trace is their sum, over
    unmasked frames. Location-aware models (``allo_keypoint_slds``) use that module's
    ``log_joint_likelihood``, which adds heading and centroid terms per syllable.

    Parameters
    ----------
    checkpoint_path : path-like
        A keypoint-moseq checkpoint.
    data : dict, optional
        The training data (``Y``, ``conf``, ``mask``) when already in memory; read from
        the checkpoint otherwise. One snapshot is in memory at a time.

    Returns
    -------
    pandas.DataFrame
        Columns ``iteration`` and ``log_likelihood``, one row per saved snapshot, in
        iteration order.
    """
    import h5py
    import keypoint_moseq  # noqa: F401  (x64 on before jax-moseq runs)
    from keypoint_moseq.io import load_hdf5

    with h5py.File(checkpoint_path, "r") as f:
        iterations = sorted(int(i) for i in f["model_snapshots"])
    if data is None:
        data = load_hdf5(str(checkpoint_path), "data")
    rows = []
    for iteration in iterations:
        model = load_hdf5(str(checkpoint_path), f"model_snapshots/{iteration}")
        rows.append({"iteration": iteration, "log_likelihood": _log_joint_likelihood(data, model)})
        del model
        _progress()
    return pd.DataFrame(rows, columns=["iteration", "log_likelihood"])


def still_trending(
    trace: pd.DataFrame,
    tail_fraction: float = 0.25,
    alpha: float = 0.05,
    min_points: int = TREND_MIN_POINTS,
    relative: float = 0.01,
) -> bool:
    """Whether the last part of a convergence trace still drifts.

    Rule: take the last ``tail_fraction`` of the saved snapshots (at least
    ``min_points``) and fit a straight line to log-likelihood against iteration. The fit
    is still trending when

    * the line's slope differs from zero at significance ``alpha`` (5 %, two-sided
      t-test of the slope, scipy's ``linregress``): a sampler at equilibrium fluctuates
      around a level, and the test asks whether the drift over the tail is larger than
      those fluctuations explain. It compares the drift with the scatter around the line,
      scaled for the number of points, so a short tail needs a larger drift, and a flat
      trace is flagged in about ``alpha`` of cases (fluctuations of snapshots 25 sweeps
      apart are close to independent; correlated ones make the test more eager). The
      level is a warning's: simulated flat traces of 8 to 40 snapshots were flagged in
      5 to 6.5 % of cases, and a tail of 5 snapshots rising by one fluctuation's standard
      deviation per snapshot was caught in 61 % (1 % would catch 18 %); and
    * the line's change over the tail (up or down) exceeds ``relative`` (1 %) of the whole
      trace's range: a drift that small next to the climb from the starting state does
      not change the fit.

    Parameters
    ----------
    trace : pandas.DataFrame
        Columns ``iteration`` and ``log_likelihood`` (:func:`convergence_trace`).
    tail_fraction, alpha, min_points, relative : float, float, int, float
        The rule's settings (above).

    Returns
    -------
    bool
        True when still trending; also when a value is not finite (a broken fit). False
        when the trace has fewer than ``min_points`` snapshots: too few to tell.
    """
    from scipy.stats import linregress

    trace = trace.sort_values("iteration")
    values = trace["log_likelihood"].to_numpy(float)
    iterations = trace["iteration"].to_numpy(float)
    if len(values) < min_points:
        return False
    if not np.all(np.isfinite(values)):
        return True
    m = max(min_points, math.ceil(tail_fraction * len(values)))
    tail_x, tail_y = iterations[-m:], values[-m:]
    if np.ptp(tail_y) == 0:
        return False
    fit = linregress(tail_x, tail_y)
    change = abs(fit.slope * (tail_x[-1] - tail_x[0]))
    return bool(fit.pvalue < alpha and change > relative * float(np.ptp(values)))


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
        ``convergence_plot``, ``chosen`` (a hard link to the chosen restart's checkpoint).
    """
    from .runtime import start_jax_job

    start_jax_job(smk)
    _select(smk)


def _select(smk) -> None:
    from .atomic import link_or_copy, save_figure, write_table
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
    link_or_copy(checkpoints[names.index(chosen)], out.chosen)
    log.info("chosen checkpoint %s -> %s", checkpoints[names.index(chosen)], out.chosen)
