"""Take the README's screenshot of the asset graph from a running Dagster UI, with headless Chromium.

    make demo && make ui                      # in one terminal (UI on port 3000)
    .venv/bin/python docs/screenshot.py 3000 docs/asset_graph.png

Chromium is driven through its DevTools protocol (``docs/chromium.py``) so that
the UI's first-visit dialog is dismissed, the navigation and asset-tree panels are folded away and
the stage groups are expanded before the 1400 x 900 screenshot is taken. Needs ``chromium`` on the
PATH (``apt-get install -y chromium``).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
import urllib.request

from chromium import HeadlessChromium  # docs/chromium.py, beside this script

log = logging.getLogger("screenshot")

#: stage groups shown expanded; the parameter snapshots stay folded in one box
EXPANDED_GROUPS = ("ingest", "preprocess", "motion", "cnmfe", "signals")
CLOSE_ASSET_TREE = """(() => {
    const box = [...document.querySelectorAll('input')].find(i => (i.placeholder || '').startsWith('Jump to'));
    let el = box, button = null;
    for (let k = 0; k < 5 && el && !button; k++) { el = el.parentElement; button = el && el.querySelector('button'); }
    if (button) { button.click(); return true; }
    return false;
})()"""


def _graphql(ui: str, query: str) -> dict:
    req = urllib.request.Request(f"{ui}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def capture_asset_graph(ui: str, out: str, *, width: int, height: int, groups) -> None:
    with HeadlessChromium(width=width, height=height) as browser:
        browser.navigate(f"{ui}/overview", wait_s=6)
        browser.evaluate("localStorage.setItem('dagster-nav-collapsed', 'true')")
        expanded = ",".join(f"global@global:{g}" for g in groups)
        browser.navigate(f"{ui}/asset-groups?expanded={expanded}", wait_s=12)
        log.info("asset tree folded: %s", browser.evaluate(CLOSE_ASSET_TREE))
        time.sleep(4)
        shot = browser.screenshot()
    with open(out, "wb") as f:
        f.write(shot)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("port", type=int, help="port of the running Dagster UI")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=900)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ui = f"http://127.0.0.1:{args.port}"
    _graphql(ui, "mutation { setNuxSeen }")  # the first-visit dialog would cover the graph
    capture_asset_graph(ui, args.out, width=args.width, height=args.height, groups=EXPANDED_GROUPS)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
