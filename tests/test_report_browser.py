"""The report page in a real browser: every figure loads offline and the console stays clean.

Headless Chromium (Debian package `chromium`) is driven over the DevTools protocol on a
pipe (`--remote-debugging-pipe`: commands on fd 3, replies on fd 4, JSON messages ending
in NUL), so the test needs no Python package beyond the standard library. Skipped where
/usr/bin/chromium is absent; CI installs it.
"""
import base64
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from selectivity.report import write_report
from tests.report_fixture import sweep_table

CHROMIUM = Path("/usr/bin/chromium")
OFFLINE_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--remote-debugging-pipe"]
TIMEOUT_S = 60.0
IMAGES_SCRIPT = "JSON.stringify(Array.from(document.images, i => [i.complete, i.naturalWidth, i.alt]))"


class DevToolsPipe:
    """Minimal DevTools client: send a command, wait for its reply, keep the events seen."""

    def __init__(self, profile_dir: Path):
        to_browser_read, self.to_browser = os.pipe()
        self.from_browser, from_browser_write = os.pipe()

        # Move the child's ends above fd 10 first: os.pipe may itself return 3 or 4, and a
        # dup2 onto the same number would keep close-on-exec set.
        child_ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_read, from_browser_write)]

        def wire_pipes():  # in the child: the browser expects the pipe on fds 3 and 4
            os.dup2(child_ends[0], 3)
            os.dup2(child_ends[1], 4)

        self.process = subprocess.Popen(
            [str(CHROMIUM), *OFFLINE_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            preexec_fn=wire_pipes, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (to_browser_read, from_browser_write, *child_ends):
            os.close(fd)
        self.buffer, self.events, self.next_id = b"", [], 0

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.from_browser], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise TimeoutError("chromium did not answer over the DevTools pipe")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        self.next_id += 1
        command = {"id": self.next_id, "method": method, "params": params or {}}
        if session_id:
            command["sessionId"] = session_id
        os.write(self.to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + TIMEOUT_S
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = self._read_message(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (TimeoutError, ConnectionError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)


def render_page(html_path: Path, profile_dir: Path, screenshot: Path | None = None) -> tuple[list, list]:
    """Open html_path in headless Chromium.

    Returns:
        (images, problems): [complete, naturalWidth, alt] per <img>, and every console error,
        uncaught exception or browser log entry of level error.
    """
    browser = DevToolsPipe(profile_dir)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            browser.send(f"{domain}.enable", session_id=session)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900,
                     "deviceScaleFactor": 1, "mobile": False}, session_id=session)
        browser.send("Page.navigate", {"url": html_path.resolve().as_uri()}, session_id=session)
        browser.wait_for("Page.loadEventFired")
        result = browser.send("Runtime.evaluate", {"expression": IMAGES_SCRIPT, "returnByValue": True},
                              session_id=session)
        images = json.loads(result["result"]["value"])
        if screenshot is not None:
            size = browser.send("Page.getLayoutMetrics", session_id=session)["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                           "clip": clip}, session_id=session)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        problems = [event for event in browser.events if _is_problem(event)]
        return images, problems
    finally:
        browser.close()


def _is_problem(event: dict) -> bool:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled":
        return params.get("type") in ("error", "assert")
    if method == "Log.entryAdded":
        return params.get("entry", {}).get("level") == "error"
    return method == "Runtime.exceptionThrown"


@pytest.mark.slow
def test_report_page_renders_offline_with_every_figure(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (Debian package `chromium`); CI installs it")
    html_path = write_report(sweep_table(seeds=(0, 1)), tmp_path / "report")
    screenshot = tmp_path / "page.png"
    images, problems = render_page(html_path, tmp_path / "profile", screenshot)
    assert len(images) == 6, images
    assert all(complete and natural_width > 0 for complete, natural_width, _ in images), images
    assert problems == []
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
