"""Rule plot_trajectories: each syllable's typical pose trajectory and the similarity
dendrogram (keypoint-moseq), from the training sessions' cleaned keypoints."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.plots import use_cpu_for_plots
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
use_cpu_for_plots()

from pathlib import Path

from kpms_flow.atomic import save_figure
from kpms_flow.config import kpms_config
from kpms_flow.keypoints import read_session
from kpms_flow.model import load_training_sessions, read_training_attrs
from kpms_flow.plots import (
    atomic_directory,
    dendrogram_figure,
    load_results,
    message_figure,
    trajectory_figures,
    typical_trajectories,
)

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
bodyparts, fps, _ = read_training_attrs(inp.data)
kcfg = kpms_config(p.model, bodyparts)
results = load_results([inp.results])
clean = {read_session(path).session: path for path in inp.clean}
coordinates, _, _, _ = load_training_sessions(
    {s: clean[s] for s in results}, bodyparts_order=bodyparts
)

trajectories = typical_trajectories(coordinates, results, kcfg, fps, p.min_frequency)
with atomic_directory(out.trajectories) as folder:
    if trajectories:
        figures = trajectory_figures(trajectories, kcfg)
    else:
        figures = {
            "all_syllables": message_figure(
                "Syllable trajectories",
                f"no syllable above frequency {p.min_frequency:g} has instances of 0.1 s or more",
            )
        }
    for name, fig in figures.items():
        save_figure(Path(folder, f"{name}.png"), fig, dpi=p.dpi, bbox_inches="tight")
save_figure(
    out.dendrogram,
    dendrogram_figure(coordinates, results, kcfg, fps, p.min_frequency),
    dpi=p.dpi,
    bbox_inches="tight",
)
log.info("trajectory plots for %d syllables", len(trajectories))
