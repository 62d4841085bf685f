"""The HTML report of the real KVM fixture in headless Chromium, with the network off.

Driven over the Chrome DevTools protocol on ``--remote-debugging-pipe`` (JSON
messages ending in NUL on file descriptors 3 and 4): no driver library
needed, and the protocol reports console messages, exceptions, log entries
(CSP violations among them) and every request the page makes. CI installs
Debian's ``chromium`` (.ci/run); without it the test skips, saying so.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, run_cli

CHROMIUM = next(
    (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)"
)
TIMEOUT = 90.0


class DevTools:
    """A headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, exe: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            # no network at all: no DNS, and every connection to a closed port
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--window-size=1280,1600",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(0, "--no-sandbox")  # Chromium refuses root with its sandbox

        def pipe_fds() -> None:  # in the child: the pipe ends where Chromium expects them
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [exe, *args],
            preexec_fn=pipe_fds,
            pass_fds=(3, 4),  # kept open past close_fds (which runs after preexec_fn)
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            got = self._read(deadline)
            if got.get("id") == self._id:
                if "error" in got:
                    raise RuntimeError(f"{method}: {got['error']}")
                return got.get("result", {})
            self.events.append(got)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            got = self._read(deadline)
            self.events.append(got)
            if got.get("method") == method:
                return got

    def open_page(self) -> None:
        pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        target = (
            pages[0]["targetId"]
            if pages
            else self.call("Target.createTarget", url="about:blank")["targetId"]
        )
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Network.emulateNetworkConditions",
            offline=True,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, EOFError):
            self.call("Browser.close")  # a browser already gone is fine
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


# every <svg>: its size and how many of its shapes have a non-empty box
SVG_PROBE = """
JSON.stringify([...document.querySelectorAll('svg')].map(svg => {
  const shapes = [...svg.querySelectorAll('rect, path, polyline, line')];
  const drawn = shapes.filter(e => { const b = e.getBBox(); return b.width > 0 || b.height > 0; });
  const r = svg.getBoundingClientRect();
  return {w: r.width, h: r.height, shapes: shapes.length, drawn: drawn.length,
          title: svg.querySelector('title') ? svg.querySelector('title').textContent : ''};
}))
"""


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            out.append(f"exception: {p['exceptionDetails'].get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
            out.append(f"console.{p['type']}: {p.get('args')}")
        elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            out.append(f"log {p['entry']['level']}: {p['entry']['text']}")
    return out


def _load(page: Path, tmp_path: Path) -> tuple[list[dict[str, Any]], bytes, list[str], list[str]]:
    """(svg probes, screenshot, requested URLs, console / log errors) of ``page``."""
    assert CHROMIUM is not None
    browser = DevTools(CHROMIUM, tmp_path / "profile")
    try:
        browser.open_page()
        browser.call("Page.navigate", url=page.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        probe = browser.call("Runtime.evaluate", expression=SVG_PROBE, returnByValue=True)
        svgs = json.loads(probe["result"]["value"])
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        png = base64.b64decode(shot["data"])
        requests = [
            e["params"]["request"]["url"]
            for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
        return svgs, png, requests, _errors(browser.events)
    finally:
        browser.close()


def test_report_renders_in_headless_chromium(tmp_path):
    report = tmp_path / "report.html"
    r = run_cli("report", str(FIXTURES / "kvm-pinned-6.18.txt.gz"), "-o", str(report))
    assert r.exit_code == 0, r.output
    svgs, png, requests, errors = _load(report, tmp_path)
    (tmp_path / "report.png").write_bytes(png)
    # the plots: 4 lines, 4 avoided-work bars, 4 heat maps and the scan passes, all drawn
    assert len(svgs) == 13, svgs
    for svg in svgs:
        assert svg["w"] > 200 and svg["h"] > 60, svg
        assert svg["drawn"] > 0, svg
    assert sum(s["drawn"] for s in svgs) >= 100  # 108 on this fixture
    assert errors == []
    assert requests == [report.resolve().as_uri()]  # the page itself and nothing else
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 50_000


def test_the_probe_sees_errors_and_requests(tmp_path):
    """The checks above can fail: a page with a console error and a remote image."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><svg width=10 height=10></svg>"
        "<img src='http://example.invalid/x.png'><script>console.error('boom')</script>"
        "</body></html>"
    )
    svgs, _png, requests, errors = _load(page, tmp_path)
    assert svgs == [{"w": 10, "h": 10, "shapes": 0, "drawn": 0, "title": ""}]
    assert "http://example.invalid/x.png" in requests
    assert any("boom" in e for e in errors)
