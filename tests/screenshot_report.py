"""Look at a Snakemake report as a person would: render it in headless Chromium.

    python tests/screenshot_report.py report.html shots/

writes ``shots/overview.png`` (the report as it opens) and, for every item, a screenshot
of the report with that item opened: its category's list, its caption and the item
itself. Needs Debian's ``chromium`` (``apt-get install chromium``). Also used by
tests/test_report.py, which parses the report with :func:`report_items`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Offline and quiet: no first-run UI, no network, a fresh profile per run.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str | None:
    """Chromium, installed from Debian's packages where it is missing and we are root (as
    the SLURM tests install theirs), so that CI machines render instead of skipping;
    None where it cannot be had (not root, no apt-get)."""
    import os

    path = find_chromium()
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return find_chromium()


def _script_value(html: str, name: str):
    """The JSON literal a Snakemake report assigns in ``<script id=name>var name = ...``."""
    start = html.index(f'<script id="{name}">')
    start = html.index(f"var {name} = ", start) + len(f"var {name} = ")
    value, _ = json.JSONDecoder().raw_decode(html, start)
    return value


def report_items(report: Path) -> tuple[dict, dict]:
    """A self-contained report's items (path -> name, caption, labels, mime type, data
    URI) and categories (category -> subcategory -> paths)."""
    html = Path(report).read_text(encoding="utf-8")
    return _script_value(html, "results"), _script_value(html, "categories")


def screenshot(page: Path, png: Path, size=(1400, 1000), chromium: str | None = None) -> Path:
    """Render ``page`` and save what a window of ``size`` shows."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(f"no Chromium found (tried {', '.join(CHROMIUM_NAMES)})")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kpms_flow_chromium_") as profile:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            # Let the report's React app render (and images decode) before the capture.
            "--virtual-time-budget=15000",
            f"--screenshot={png}",
            Path(page).resolve().as_uri(),
        ]
        for attempt in range(2):  # headless Chromium now and then hangs on a busy machine
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
                break
            except subprocess.TimeoutExpired:
                if attempt:
                    raise
    if not png.exists():
        raise RuntimeError(f"Chromium wrote no screenshot of {page}:\n{proc.stderr[-3000:]}")
    return png


def _view(item: dict) -> str:
    mime = item["mime_type"] or ""
    if mime.startswith("image/"):
        return "img"
    if mime == "text/html":
        return "html"
    if mime == "application/pdf":
        return "pdf"
    return ""  # other files are download links in the report


def item_page(report: Path, path: str, category: str, target: Path) -> Path:
    """A copy of ``report`` that opens item ``path`` as a click in its category would."""
    results, _ = report_items(report)
    view = _view(results[path])
    open_item = {"navbarMode": "resultinfo", "resultPath": path}
    if view:
        open_item.update(content=view, contentPath=results[path]["data_uri"])
    # React mounts the app after the page has loaded: wait for it, then click.
    script = (
        "<script>(function open() {"
        "if (typeof app === 'undefined' || !app) { setTimeout(open, 50); return; }"
        f"app.showCategory({json.dumps(category)});"
        f"setTimeout(function () {{ app.setView({json.dumps(open_item)}); }}, 200);"
        "})();</script>"
    )
    html = Path(report).read_text(encoding="utf-8")
    end = html.rindex("</body>")
    target.write_text(html[:end] + script + html[end:], encoding="utf-8")
    return target


def screenshot_items(report: Path, out_dir: Path, size=(1400, 1000)) -> list[Path]:
    """One screenshot per report item, named after its category and file."""
    results, categories = report_items(report)
    shots = []
    with tempfile.TemporaryDirectory(prefix="kpms_flow_report_") as scratch:
        for category, subcategories in categories.items():
            for paths in subcategories.values():
                for path in paths:
                    name = re.sub(r"[^A-Za-z0-9]+", "_", f"{category}_{path}").strip("_")
                    page = item_page(report, path, category, Path(scratch, f"{name}.html"))
                    shots.append(screenshot(page, out_dir / f"{name}.png", size))
    return shots


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a self-contained report (report.html)")
    parser.add_argument("out_dir", type=Path, help="folder for the screenshots")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--overview-only", action="store_true")
    args = parser.parse_args(argv)
    size = (args.width, args.height)
    shots = [screenshot(args.report, args.out_dir / "overview.png", size)]
    if not args.overview_only:
        shots += screenshot_items(args.report, args.out_dir, size)
    for shot in shots:
        print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
