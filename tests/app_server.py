"""A real `streamlit run` server and Debian's Chromium, for the browser tests (test_browser.py, test_load.py).

Chromium is found at $RESNET_LAB_CHROMIUM or /usr/bin/chromium. Without it the browser tests skip locally,
but fail under CI (CI=true), so a CI run can never silently drop them.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from speed import hang_ms, hang_s

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("RESNET_LAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
ACTION_TIMEOUT_S = 30  # Playwright's default for a click or a wait, before the machine's slowdown
NAVIGATION_TIMEOUT_S = 60
# What is open right now, for the failure report (conftest.py): its screenshots and server logs.
LIVE_BROWSERS: list = []
LIVE_SERVERS: list = []
SUSPECT_PAGES: list = []  # pages a test gave up waiting on: reported first
ARTIFACTS = ROOT / "test-results"


class AppUrl(str):
    """The server's base URL (a plain str to Playwright), with its process and log file for the curious."""

    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env: dict | None = None, timeout: float = 60.0):
    """`streamlit run streamlit_app.py` on a free port of 127.0.0.1; yields its URL (an AppUrl) once healthy,
    and stops it afterwards. `env` is added to this process's environment for the server."""
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"resnet-lab-streamlit-{port}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = AppUrl(f"http://127.0.0.1:{port}")
    url.process, url.log_path = proc, log_path
    LIVE_SERVERS.append(url)
    try:
        timeout = hang_s(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert proc.poll() is None, "streamlit exited: " + url.log_tail()
            assert time.monotonic() < deadline, f"streamlit did not become healthy in {timeout:.0f} s"
            time.sleep(0.3)
        yield url
    finally:
        LIVE_SERVERS.remove(url)
        if proc.poll() is not None:  # it ended by itself: its log goes into the test's report (it is deleted below)
            print(f"streamlit exited with code {proc.returncode} during the test; its log ends:\n{url.log_tail()}")
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        log_path.unlink(missing_ok=True)


def require_chromium() -> None:
    """Skip without Chromium, except under CI, where its absence is a failure."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; CI must install Debian's chromium")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")


def launch_chromium(playwright, args: list[str] = ()):
    """Debian's Chromium through Playwright (skips or fails as require_chromium says when it is missing).
    Its contexts wait hang_ms(30) for an action and hang_ms(60) for a navigation: hang guards, scaled by the
    machine's slowdown like every other."""
    require_chromium()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + list(args))
    plain_new_context = browser.new_context

    def new_context(**kwargs):
        context = plain_new_context(**kwargs)
        context.set_default_timeout(hang_ms(ACTION_TIMEOUT_S))
        context.set_default_navigation_timeout(hang_ms(NAVIGATION_TIMEOUT_S))
        return context

    browser.new_context = new_context
    LIVE_BROWSERS.append(browser)
    browser.on("disconnected", lambda b: LIVE_BROWSERS.remove(b) if b in LIVE_BROWSERS else None)
    return browser


def diagnostics(name: str, max_pages: int = 10) -> str:
    """What the open browsers show (each page's visible text and screenshot, saved under test-results/ and
    named here: first the pages a test's wait gave up on, SUSPECT_PAGES, then the first ones) and each running server's log tail: printed when a browser test fails."""
    name = re.sub(r"[^\w.-]+", "_", name)[-120:]
    lines = []
    everything = [(c, p, page) for browser in list(LIVE_BROWSERS) for c, context in enumerate(browser.contexts)
                  for p, page in enumerate(context.pages)]
    suspects = [entry for entry in everything if entry[2] in SUSPECT_PAGES]
    SUSPECT_PAGES.clear()
    # the load test has 30 tabs: the ones a wait gave up on, then the first ones tell the story
    for c, p, page in (suspects + [entry for entry in everything if entry not in suspects])[:max_pages]:
        label = f"context {c} page {p}" + (" (waited on)" if (c, p, page) in suspects else "")
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            path = ARTIFACTS / f"{name}-{c}-{p}.png"
            page.screenshot(path=str(path), full_page=True, timeout=15_000)
            label += f", screenshot {path.relative_to(ROOT)}"
            text = page.evaluate("document.body ? document.body.innerText : ''")
            # the page's uncaught JavaScript errors and console errors: a blank page is Streamlit's frontend
            # having thrown (one of 24 watchers went blank as a shared run ended, seen once in CI)
            errors = [f"uncaught: {e}" for e in page.page_errors()[-3:]]
            errors += [f"console: {m.text}" for m in page.console_messages() if m.type == "error"][-3:]
        except Exception as e:  # a closed or hung page: say so and go on
            text, errors = f"(could not read the page: {str(e).splitlines()[0][:120]})", []
        lines.append(f"---- {label}: {page.url}")
        lines.extend(error[:500] for error in errors)
        lines.append(text.strip()[:1500] or "(empty page)")
    for url in list(LIVE_SERVERS):
        lines.append(f"---- server {url} log (tail)")
        lines.append(url.log_tail(3000) or "(empty log)")
    return "\n".join(lines)
