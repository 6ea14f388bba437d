"""Screenshots of a study's page in headless Chromium, one PNG per section, for docs/study.md.

    python docs/study/screenshots.py runs/heart/study/study.html docs/study/heart

Each shot runs from one section's heading to a later one (at most MAX_HEIGHT pixels), at a 1200 px wide window.
Chromium is the system's (`apt-get install chromium`), driven by playwright as tests/test_app.py drives it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WIDTH, MAX_HEIGHT = 1200, 1400
SECTIONS = {  # file name: (the heading the shot starts at, the one it stops before); None: the page's top or end
    "1-top": (None, "Calibration, curves and errors"),
    "2-calibration": ("Calibration, curves and errors", "Subgroups"),
    "3-failures": ("Failure analysis", "Data"),
    "4-data-compute": ("Data", "CLAIM 2024 checklist"),
    "5-claim": ("CLAIM 2024 checklist", None),
}


def main(page_path: str, out: str) -> None:
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.goto(Path(page_path).resolve().as_uri())
        headings = page.eval_on_selector_all("h2", "nodes => nodes.map(n => [n.textContent, n.getBoundingClientRect().top + window.scrollY])")
        height = page.evaluate("document.documentElement.scrollHeight")

        def top(heading: str | None, default: float) -> float:
            return default if heading is None else next(y for text, y in headings if text.startswith(heading))

        for name, (first, stop) in SECTIONS.items():
            start = max(0, top(first, 0) - 12)
            end = min(top(stop, height) - 12, start + MAX_HEIGHT)
            page.screenshot(path=str(target / f"{name}.png"), full_page=True,
                            clip={"x": 0, "y": start, "width": WIDTH, "height": end - start})
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
