"""Rule grid_movies: keypoint-moseq's grid movies from the training sessions' videos, and
one page showing them all for the report."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.plots import use_cpu_for_plots
from kpms_flow.runtime import log_to

log = log_to(snakemake.log[0])  # noqa: F821
use_cpu_for_plots()

from pathlib import Path

from kpms_flow.atomic import write_text
from kpms_flow.config import kpms_config
from kpms_flow.keypoints import read_session
from kpms_flow.model import load_training_sessions, read_training_attrs
from kpms_flow.plots import atomic_directory, grid_movies, load_results, video_gallery_html

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
bodyparts, fps, _ = read_training_attrs(inp.data)
if not fps:
    raise ValueError(f"{inp.data}: the frame rate is unknown; grid movies need it (config key fps)")
kcfg = kpms_config(p.model, bodyparts)
results = {s: r for s, r in load_results([inp.results]).items() if s in p.videos}
clean = {read_session(path).session: path for path in inp.clean}
coordinates, _, _, _ = load_training_sessions(
    {s: clean[s] for s in results}, bodyparts_order=bodyparts
)
with atomic_directory(out.movies) as folder:
    sampled = grid_movies(results, p.videos, coordinates, kcfg, fps, folder, p.options)
    movies = {
        f"syllable {s}": Path(folder, f"syllable{s}.mp4") for s in sorted(sampled)
    }
    page = video_gallery_html(
        movies,
        "Grid movies",
        f"{p.options['rows']} x {p.options['cols']} instances per syllable from "
        f"{len(results)} sessions, {p.options['before_onset_sec']:g} s before to "
        f"{p.options['after_onset_sec']:g} s after onset; the dot marks the syllable.",
    )
write_text(out.gallery, page)
log.info("grid movies for %d syllables", len(movies))
