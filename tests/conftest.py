import sys
from pathlib import Path

import pytest

# Make `import resnet_viz` work from a plain checkout (no install needed).
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real Chromium against a real `streamlit run` server")
    config.addinivalue_line("markers", "slow: a long real-training check (science), still run in CI")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module (skips locally without it, fails under CI)."""
    from app_server import launch_chromium, require_chromium
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()
