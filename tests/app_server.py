"""A real `streamlit run` server and Debian's Chromium, for the browser tests (test_browser.py, test_load.py).

Chromium is found at $RESNET_LAB_CHROMIUM or /usr/bin/chromium. Without it the browser tests skip locally,
but fail under CI (CI=true), so a CI run can never silently drop them.
"""
import os
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

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("RESNET_LAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"


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
    try:
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
    """Debian's Chromium through Playwright (skips or fails as require_chromium says when it is missing)."""
    require_chromium()
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + list(args))
