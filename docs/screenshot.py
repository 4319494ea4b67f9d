"""Take the README's screenshot of the asset graph from a running Dagster UI, with headless Chromium.

    make demo && make ui                      # in one terminal (UI on port 3000)
    .venv/bin/python docs/screenshot.py 3000 docs/asset_graph.png

Chromium is driven through its DevTools protocol (``websockets`` comes with Dagster) so that
the UI's first-visit dialog is dismissed, the navigation and asset-tree panels are folded away and
the stage groups are expanded before the 1400 x 900 screenshot is taken. Needs ``chromium`` on the
PATH (``apt-get install -y chromium``).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(ui: str, query: str) -> dict:
    req = urllib.request.Request(f"{ui}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


class _DevTools:
    def __init__(self, ws):
        self.ws, self.n = ws, 0

    async def call(self, method: str, **params):
        self.n += 1
        await self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self.n:
                return msg.get("result", {})


async def _capture(ui: str, out: str, *, width: int, height: int, groups) -> None:
    import websockets

    port, profile = _free_port(), tempfile.mkdtemp(prefix="chromium-")
    browser = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--remote-debugging-port={port}", f"--user-data-dir={profile}", f"--window-size={width},{height}",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        page = None
        for _ in range(60):
            try:
                pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5).read())
                page = next(p for p in pages if p["type"] == "page")
                break
            except (OSError, StopIteration):
                time.sleep(0.5)
        if page is None:
            raise RuntimeError("chromium did not start (is it installed? apt-get install -y chromium)")
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=50_000_000) as ws:
            dt = _DevTools(ws)
            await dt.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                          mobile=False)
            await dt.call("Page.navigate", url=f"{ui}/overview")
            await asyncio.sleep(6)
            await dt.call("Runtime.evaluate", expression="localStorage.setItem('dagster-nav-collapsed', 'true')")
            expanded = ",".join(f"global@global:{g}" for g in groups)
            await dt.call("Page.navigate", url=f"{ui}/asset-groups?expanded={expanded}")
            await asyncio.sleep(12)
            closed = await dt.call("Runtime.evaluate", expression=CLOSE_ASSET_TREE, returnByValue=True)
            log.info("asset tree folded: %s", closed.get("result", {}).get("value"))
            await asyncio.sleep(4)
            shot = await dt.call("Page.captureScreenshot", format="png")
        with open(out, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
    finally:
        os.killpg(browser.pid, signal.SIGTERM)
        browser.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


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
    asyncio.run(_capture(ui, args.out, width=args.width, height=args.height, groups=EXPANDED_GROUPS))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
