"""Headless Chromium driven through its DevTools protocol, for the README's screenshots and the report test.

    with HeadlessChromium(width=1400, height=900) as browser:
        browser.navigate("file:///.../96.html", wait_s=2)
        browser.evaluate("document.images.length")
        png = browser.screenshot()

Needs ``chromium`` on the PATH (Debian: ``apt-get install -y chromium``); ``websockets`` comes
with Dagster.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request


def chromium_path() -> str | None:
    """The Chromium executable, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HeadlessChromium:
    """One headless browser with one page; methods block until the browser answers."""

    def __init__(self, *, width: int = 1400, height: int = 900):
        self.width, self.height = width, height
        self._loop = asyncio.new_event_loop()
        self._ws = None
        self._n = 0

    def __enter__(self) -> "HeadlessChromium":
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed (Debian: apt-get install -y chromium)")
        port, self._profile = _free_port(), tempfile.mkdtemp(prefix="chromium-")
        self._proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             "--allow-file-access-from-files", f"--remote-debugging-port={port}", f"--user-data-dir={self._profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            page = self._first_page(port)
            self._ws = self._run(self._connect(page["webSocketDebuggerUrl"]))
            self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._ws is not None:
            self._run(self._ws.close())
        os.killpg(self._proc.pid, signal.SIGTERM)
        self._proc.wait(timeout=30)
        shutil.rmtree(self._profile, ignore_errors=True)
        self._loop.close()

    # ---------------------------------------------------------------------------------- commands
    def call(self, method: str, **params) -> dict:
        return self._run(self._call(method, params))

    def navigate(self, url: str, *, wait_s: float = 2.0) -> None:
        self.call("Page.navigate", url=url)
        time.sleep(wait_s)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"JavaScript failed: {out['exceptionDetails'].get('text')}")
        return out.get("result", {}).get("value")

    def screenshot(self, *, full_page: bool = False) -> bytes:
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        return base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])

    # ---------------------------------------------------------------------------------- plumbing
    def _run(self, coroutine):
        return self._loop.run_until_complete(coroutine)

    @staticmethod
    def _first_page(port: int) -> dict:
        for _ in range(60):
            try:
                pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5).read())
                return next(p for p in pages if p["type"] == "page")
            except (OSError, StopIteration, ValueError):
                time.sleep(0.5)
        raise RuntimeError("chromium started but offered no page to drive")

    @staticmethod
    async def _connect(url: str):
        import websockets

        return await websockets.connect(url, max_size=100_000_000)

    async def _call(self, method: str, params: dict) -> dict:
        self._n += 1
        await self._ws.send(json.dumps({"id": self._n, "method": method, "params": params}))
        while True:
            msg = json.loads(await self._ws.recv())
            if msg.get("id") == self._n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
