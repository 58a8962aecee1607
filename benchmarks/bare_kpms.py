"""The pipeline's science as a bare keypoint-moseq script, following its documented notebook.

    .venv/bin/python benchmarks/bare_kpms.py SESSIONS_TSV OUT_DIR --latent-dim 3 \\
        --arhmm-kappa 1e4 --full-kappa 1e3 --arhmm-iters 50 --full-iters 100 \\
        [--apply-iters 100] [--num-states 25] [--seed 0] [--anterior nose] [--posterior tailbase]

SESSIONS_TSV has (at least) the columns ``path`` and ``train``, as the demo's
``sessions.tsv``: rows with train true are fitted, the others get the frozen model applied.
Writes a keypoint-moseq project to OUT_DIR/project (config.yml, pca.p, the model's
checkpoint.h5 and results.h5) and the seconds each step took to OUT_DIR/timings.json.

The sequence is keypoint-moseq 0.8.1's modeling notebook (docs/source/modeling.ipynb):
setup_project, update_config, load_keypoints, outlier_removal, format_data, fit_pca,
estimate_sigmasq_loc, init_model, fit_model(ar_only=True), load_checkpoint,
update_hypparams(kappa), fit_model(start_iter=current_iter), reindex_syllables_in_checkpoint,
load_checkpoint, extract_results, and for new recordings load_keypoints, outlier_removal,
format_data, apply_model. Where the notebook leaves a choice this script takes the one the
pipeline documents, so that the two can be compared label for label:

- kappa: the AR-HMM kappa is written to the config (``update_config(kappa=...)``, the
  documented way to set any hyperparameter) before ``init_model``, not changed with
  ``update_hypparams`` afterwards. kappa enters the initial transition matrix
  (jax_moseq's ``init_hdp_transitions``), so the notebook's other order starts a different
  Markov chain: same kind of result, not the same labels.
- the model seed is passed to ``init_model`` (the notebook relies on its default, 0).
- sessions outside the training set go through ``outlier_removal`` as the training data do
  (the pipeline runs outlier QA on every session), and each is applied on its own.

Two things are not keypoint-moseq's but this machine's, and the pipeline sets them the
same way (kpms_flow.runtime.configure_jax): the JAX persistent compilation cache
($KPMS_FLOW_JAX_CACHE, default .snakemake/kpms-flow-jax-cache; empty disables), and the
sweep re-typing work-around for jax-moseq 0.3.7 (kpms_flow.kpms_patches; it changes no number,
see tests/test_kpms_patches.py, but without it a full-model sweep recompiles for ~25 s).
``--no-retyping-fix`` turns the latter off.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = str(ROOT / ".snakemake" / "kpms-flow-jax-cache")


def setup_jax(cache: str | None, retyping_fix: bool = True) -> None:
    """The compile cache and the re-typing work-around, as the pipeline's rules set them."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import keypoint_moseq  # noqa: F401  (turns on jax_enable_x64 first)
    import jax

    if retyping_fix:
        sys.path.insert(0, str(ROOT / "scripts"))
        from kpms_flow.kpms_patches import install_sweep_wrappers

        install_sweep_wrappers()
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(Path(cache).resolve()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def run_bare(
    train_files,
    apply_files,
    out_dir,
    *,
    latent_dim: int,
    arhmm_kappa: float,
    full_kappa: float,
    arhmm_iters: int,
    full_iters: int,
    apply_iters: int = 100,
    num_states: int = 25,
    seed: int = 0,
    anterior=("nose",),
    posterior=("tailbase",),
    fps: int = 30,
    model_name: str = "model",
    kappa_after_init: bool = False,
) -> dict:
    """Fit the training files and apply the model to the others, the notebook's way.

    Returns ``{"results": {recording: {syllable, latent_state, centroid, heading}},
    "pca": pca, "project_dir": path, "model_name": name, "timings": {step: seconds}}``;
    recordings are named by keypoint-moseq's ``load_keypoints`` (the file name's stem).
    ``kappa_after_init`` takes the notebook's other order: ``init_model`` with the config's
    default kappa, then ``update_hypparams(kappa=arhmm_kappa)``.
    """
    import keypoint_moseq as kpms

    timings = {}
    clock = time.perf_counter()

    def lap(step):
        nonlocal clock
        now = time.perf_counter()
        timings[step] = now - clock
        clock = now

    project_dir = str(Path(out_dir) / "project")
    config = lambda: kpms.load_config(project_dir)  # noqa: E731  (the notebook's idiom)

    coordinates, confidences, bodyparts = kpms.load_keypoints(
        [str(f) for f in train_files], "deeplabcut"
    )
    kpms.setup_project(
        project_dir, bodyparts=bodyparts, use_bodyparts=bodyparts, skeleton=[], overwrite=True
    )
    kpms.update_config(
        project_dir,
        anterior_bodyparts=list(anterior),
        posterior_bodyparts=list(posterior),
        fps=int(fps),  # an int, as generate_config writes it: it is also a filter size
        num_states=int(num_states),
        **({} if kappa_after_init else {"kappa": float(arhmm_kappa)}),
    )
    coordinates, confidences = kpms.outlier_removal(
        coordinates, confidences, project_dir, overwrite=True, **config()
    )
    lap("load")

    data, metadata = kpms.format_data(coordinates, confidences, **config())
    pca = kpms.fit_pca(**data, **config())
    kpms.save_pca(pca, project_dir)
    kpms.update_config(project_dir, latent_dim=int(latent_dim))
    # float(): update_config writes a numpy scalar as a tag load_config cannot read.
    sigmasq_loc = kpms.estimate_sigmasq_loc(data["Y"], data["mask"], filter_size=config()["fps"])
    kpms.update_config(project_dir, sigmasq_loc=float(sigmasq_loc))
    lap("format_and_pca")

    model = kpms.init_model(data, pca=pca, seed=int(seed), **config())
    if kappa_after_init:
        model = kpms.update_hypparams(model, kappa=float(arhmm_kappa))
    model, model_name = kpms.fit_model(
        model, data, metadata, project_dir, model_name, ar_only=True, num_iters=arhmm_iters
    )
    lap("fit_arhmm")

    model, data, metadata, current_iter = kpms.load_checkpoint(
        project_dir, model_name, iteration=arhmm_iters
    )
    model = kpms.update_hypparams(model, kappa=float(full_kappa))
    model = kpms.fit_model(
        model,
        data,
        metadata,
        project_dir,
        model_name,
        ar_only=False,
        start_iter=current_iter,
        num_iters=current_iter + full_iters,
    )[0]
    lap("fit_full_model")

    kpms.reindex_syllables_in_checkpoint(project_dir, model_name)
    model, data, metadata, current_iter = kpms.load_checkpoint(project_dir, model_name)
    results = kpms.extract_results(model, metadata, project_dir, model_name)
    lap("reindex_and_extract")

    for path in apply_files:
        new_coordinates, new_confidences, _ = kpms.load_keypoints(str(path), "deeplabcut")
        new_coordinates, new_confidences = kpms.outlier_removal(
            new_coordinates, new_confidences, project_dir, overwrite=True, **config()
        )
        new_data, new_metadata = kpms.format_data(new_coordinates, new_confidences, **config())
        results.update(
            kpms.apply_model(
                model,
                new_data,
                new_metadata,
                project_dir,
                model_name,
                num_iters=apply_iters,
                **config(),
            )
        )
    lap("apply")
    return {
        "results": results,
        "pca": pca,
        "project_dir": project_dir,
        "model_name": model_name,
        "timings": timings,
    }


def read_sessions(table) -> tuple[list[str], list[str]]:
    """Training and held-out pose files of a sessions table (relative paths as written)."""
    import pandas as pd

    rows = pd.read_csv(table, sep="\t", keep_default_na=False)
    train = rows["train"].astype(str).str.lower().isin(["true", "1", "yes"])
    return rows.loc[train, "path"].tolist(), rows.loc[~train, "path"].tolist()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sessions", help="sessions table with columns path and train")
    parser.add_argument("out_dir")
    parser.add_argument("--latent-dim", type=int, required=True)
    parser.add_argument("--arhmm-kappa", type=float, required=True)
    parser.add_argument("--full-kappa", type=float, required=True)
    parser.add_argument("--arhmm-iters", type=int, required=True)
    parser.add_argument("--full-iters", type=int, required=True)
    parser.add_argument("--apply-iters", type=int, default=100)
    parser.add_argument("--num-states", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--anterior", nargs="+", default=["nose"])
    parser.add_argument("--posterior", nargs="+", default=["tailbase"])
    parser.add_argument("--no-retyping-fix", action="store_true")
    parser.add_argument(
        "--kappa-after-init",
        action="store_true",
        help="the notebook's other order: init_model, then update_hypparams(kappa=...)",
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    setup_jax(os.environ.get("KPMS_FLOW_JAX_CACHE", DEFAULT_CACHE), not args.no_retyping_fix)
    train, held_out = read_sessions(args.sessions)
    run = run_bare(
        train,
        held_out,
        args.out_dir,
        latent_dim=args.latent_dim,
        arhmm_kappa=args.arhmm_kappa,
        full_kappa=args.full_kappa,
        arhmm_iters=args.arhmm_iters,
        full_iters=args.full_iters,
        apply_iters=args.apply_iters,
        num_states=args.num_states,
        seed=args.seed,
        anterior=args.anterior,
        posterior=args.posterior,
        fps=args.fps,
        kappa_after_init=args.kappa_after_init,
    )
    timings = dict(run["timings"], total_in_process=time.perf_counter() - start)
    timings["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out_dir, "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    used = {name: int(np.unique(r["syllable"]).size) for name, r in run["results"].items()}
    print(json.dumps({"timings": timings, "syllables_used": used}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
