"""The report (issue 8): every figure and table of a demo run in `snakemake --report`, with
a caption; the run summary's JSON and text; grid movies from the demo's videos; and the
report rendered in headless Chromium (skipped without it)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import copy_run, snakemake
from screenshot_report import ensure_chromium, item_page, report_items, screenshot

pytestmark = pytest.mark.workflow

# Every item the demo's report must hold, with its category.
ITEMS = {
    "results/qa/summary.tsv": "Quality control",
    "results/report/qa/summary.html": "Quality control",
    **{f"results/sessions/demo_0{i}/outliers.png": "Quality control" for i in range(1, 6)},
    "results/pca/scree.png": "PCA",
    "results/pca/pcs.png": "PCA",
    **{
        f"results/{path}": "Kappa search"
        for stage in ("arhmm", "full_model")
        for path in (f"search/{stage}/trace.png", f"search/{stage}/trace.tsv",
                     f"report/search/{stage}/trace.html")
    },
    "results/figures/progress_arhmm.png": "Model fitting",
    "results/figures/progress_full_model.png": "Model fitting",
    "results/figures/syllable_frequencies.png": "Syllables",
    "results/figures/syllable_durations.png": "Syllables",
    "results/figures/trajectories/all_syllables.png": "Syllables",
    "results/figures/similarity_dendrogram.png": "Syllables",
    "results/figures/transition_matrices.png": "Syllables",
    "results/grid_movies.html": "Syllables",
    "results/groups/frequency.png": "Groups",
    "results/groups/duration.png": "Groups",
    "results/report/groups/stats_df.html": "Groups",
    "results/report/summary.html": "Run summary",
    "results/figures/ground_truth_confusion.png": "Run summary",
    "results/provenance.json": "Provenance",
}
NEW_RULES = {
    "plot_progress": 2,
    "plot_syllables": 1,
    "plot_trajectories": 1,
    "group_statistics": 1,
    "plot_ground_truth": 1,
    "grid_movies": 1,
    "table_view": 5,
}


@pytest.fixture(scope="module")
def run(demo_reference, tmp_path_factory) -> Path:
    """A copy of the complete demo run with its report."""
    workdir = copy_run(demo_reference, tmp_path_factory.mktemp("report"))
    snakemake(workdir, "--report", "report.html", config=workdir / "config" / "test.yaml")
    return workdir


@pytest.fixture(scope="module")
def items(run):
    results, categories = report_items(run / "report.html")
    return results, categories


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html).strip()


def _decode(data_uri: str) -> bytes:
    header, data = data_uri.split(",", 1)
    assert header.endswith(";base64"), header[:80]
    return base64.b64decode(data)


# ---------------------------------------------------------------- the report
def test_every_item_is_in_the_report_with_a_caption(items):
    results, categories = items
    missing = [path for path in ITEMS if path not in results]
    assert not missing, f"not in the report: {missing}"
    for path, category in ITEMS.items():
        in_category = [p for paths in categories[category].values() for p in paths]
        assert path in in_category, (path, category)
        caption = _text(results[path]["caption"])
        assert len(caption) > 60, f"{path}: caption {caption!r}"
    # and nothing in the report lacks a caption
    assert all(_text(item["caption"]) for item in results.values())


def test_per_syllable_trajectory_plots_match_the_syllables(run, items):
    results, categories = items
    syllables = sorted(categories["Syllables"]["Trajectories"])
    names = [Path(p).stem for p in syllables]
    assert "all_syllables" in names and len(names) >= 3, names
    labels = pd.read_csv(run / "results/syllables/demo_01.csv")["syllable"]
    for name in names:
        if name != "all_syllables":
            assert int(name.removeprefix("syllable")) in set(labels), name
    for path in syllables:
        assert results[path]["labels"] == {"figure": Path(path).stem}


def test_report_images_are_real_figures(items):
    from PIL import Image

    results, _ = items
    for path, item in results.items():
        if item["mime_type"] == "image/png":
            image = Image.open(io.BytesIO(_decode(item["data_uri"])))
            pixels = np.asarray(image.convert("L"))
            assert min(image.size) > 150, (path, image.size)
            assert pixels.std() > 5, f"{path} is blank"


def test_durations_are_in_ms_and_match_the_summary(run):
    summary = json.loads((run / "results/summary.json").read_text())
    assert summary["median_duration_ms"] == pytest.approx(
        summary["median_duration_frames"] * 1000 / summary["fps"]
    )
    # The duration figure names the same median in its title (pixels cannot be read here:
    # check the figure's source instead, the results keypoint-moseq plotted).
    from kpms_flow.plots import duration_figure, load_results

    fig = duration_figure(load_results([run / "results/extract/results.h5"]), summary["fps"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "syllable duration (ms)"
    assert f"{summary['median_duration_ms']:.0f} ms" in ax.get_title()


def test_table_views_show_the_tables(run, items):
    results, _ = items
    page = _decode(results["results/report/qa/summary.html"]["data_uri"]).decode()
    qa = pd.read_csv(run / "results/qa/summary.tsv", sep="\t", keep_default_na=False)
    for session in qa["session"]:
        assert f"<td>{session}</td>" in page
    assert "<td>train: false in the sessions table</td>" in page
    page = _decode(results["results/report/summary.html"]["data_uri"]).decode()
    for field in ["kappa_arhmm", "median_duration_ms", "nmi", "variance_explained"]:
        assert f"<td>{field}</td>" in page, field


def test_grid_movies_from_the_demo_videos(run, items):
    import cv2

    results, _ = items
    movies = sorted((run / "results/grid_movies").glob("syllable*.mp4"))
    assert movies, "no grid movie"
    gallery = _decode(results["results/grid_movies.html"]["data_uri"]).decode()
    assert gallery.count("<video") == len(movies)
    fps = 30
    for movie in movies:
        video = cv2.VideoCapture(str(movie))
        frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = video.read()
        video.release()
        assert ok and frame.std() > 5, movie
        # demo config: 0.2 s before and 0.5 s after onset, 2 x 2 tiles of at most 128 px
        assert frames == round(0.2 * fps) + round(0.5 * fps), (movie, frames)
        assert frame.shape[0] == frame.shape[1] <= 256
    log = (run / "results/logs/grid_movies.log").read_text()
    assert "Generating grid movies" in log and "100%" in log  # tqdm progress in the log


def test_group_statistics_use_the_sessions_table_groups(run):
    stats = pd.read_csv(run / "results/groups/stats_df.tsv", sep="\t")
    table = pd.read_csv(run / "config/demo_sessions.tsv", sep="\t")
    assert set(stats["name"]) == set(table["session"])  # training and applied sessions
    groups = dict(zip(stats["name"], stats["group"]))
    assert groups == dict(zip(table["session"], table["group"]))
    assert {"frequency", "duration", "velocity_px_s_mean"} <= set(stats.columns)
    per_session = stats.groupby("name")["frequency"].sum()
    assert ((per_session > 0.5) & (per_session <= 1 + 1e-9)).all(), per_session


# ---------------------------------------------------------------- run summary
def test_run_summary_json_and_text(run):
    summary = json.loads((run / "results/summary.json").read_text())
    variance = pd.read_csv(run / "results/pca/variance.tsv", sep="\t")
    assert summary["latent_dim"] == int((run / "results/pca/latent_dim.txt").read_text())
    assert summary["variance_explained"] == pytest.approx(
        variance["cumulative"].iloc[summary["latent_dim"] - 1]
    )
    for stage in ("arhmm", "full_model"):
        chosen = pd.read_csv(run / f"results/search/{stage}/chosen.tsv", sep="\t")
        assert summary[f"kappa_{stage}"] == pytest.approx(chosen["kappa"].iloc[0])
    assert 0 <= summary["nmi"] <= 1 and summary["syllables_used"] >= 2
    sessions = {s["session"]: s for s in summary["sessions"]}
    assert sorted(sessions) == [f"demo_0{i}" for i in range(1, 6)]
    assert sessions["demo_05"]["used_for_training"] is False
    assert sessions["demo_05"]["syllables_from"] == "apply_model"
    assert sessions["demo_05"]["exclusion_reason"] == "train: false in the sessions table"
    text = (run / "results/summary.txt").read_text()
    assert "demo_05: not trained (train: false in the sessions table)" in text
    assert f"= {summary['median_duration_ms']:.0f} ms at 30 fps" in text
    assert f"NMI with the true states: {summary['nmi']:.2f}" in text


def test_summary_is_printed_at_the_end_of_a_run(run):
    (run / "results/report/summary.html").unlink()  # one cheap job left to run
    proc = snakemake(run, config=run / "config" / "test.yaml")
    assert "kpms-flow run summary" in proc.stdout + proc.stderr
    assert "median syllable duration" in proc.stdout + proc.stderr


# ---------------------------------------------------------------- looking at it
@pytest.fixture(scope="module")
def chromium():
    path = ensure_chromium()  # installed from Debian's packages when root (CI)
    if path is None:
        pytest.skip("Chromium not installed (apt-get install chromium; not root): report not rendered")
    return path


def test_report_renders_in_chromium(run, chromium, tmp_path):
    from PIL import Image

    shot = screenshot(run / "report.html", tmp_path / "overview.png", chromium=chromium)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (1000, 1400) and pixels.std() > 10
    # Opening an item as a click would: the figure is drawn on the right of the menu.
    page = item_page(run / "report.html", "results/figures/syllable_durations.png",
                     "Syllables", tmp_path / "durations.html")
    shot = screenshot(page, tmp_path / "durations.png", chromium=chromium)
    right = np.asarray(Image.open(shot).convert("L"))[:, 800:]
    assert right.std() > 20, "the duration figure is not shown"
