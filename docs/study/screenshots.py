"""Screenshots of a study's page in headless Chromium, one PNG per section, for docs/study.md.

    python docs/study/screenshots.py runs/heart/study/study.html docs/study/heart

Each section is cut from its heading to the next one (at most MAX_HEIGHT pixels), at a 1200 px wide window.
Chromium is the system's (`apt-get install chromium`), driven by playwright as tests/test_app.py drives it.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WIDTH, MAX_HEIGHT = 1200, 1400
SECTIONS = {  # file name: the heading the section starts at (None: the top of the page)
    "1-top": None,
    "2-calibration": "Calibration, curves and errors",
    "3-failures": "Failure analysis",
    "4-data-compute": "Data",
    "5-claim": "CLAIM 2024 checklist",
}


def main(page_path: str, out: str) -> None:
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.goto(Path(page_path).resolve().as_uri())
        headings = page.eval_on_selector_all("h2", "nodes => nodes.map(n => [n.textContent, n.getBoundingClientRect().top + window.scrollY])")
        tops = [top for _, top in headings]
        for name, heading in SECTIONS.items():
            start = 0 if heading is None else next(top for text, top in headings if re.match(re.escape(heading), text))
            later = [top for top in tops if top > start + 1]
            end = min([*later[:1], start + MAX_HEIGHT]) if heading else min(tops[1] if len(tops) > 1 else MAX_HEIGHT, start + MAX_HEIGHT)
            page.screenshot(path=str(target / f"{name}.png"), full_page=True,
                            clip={"x": 0, "y": start, "width": WIDTH, "height": end - start})
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
