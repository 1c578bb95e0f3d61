import sys
from pathlib import Path

import pytest

# Make `import resnet_viz` work from a plain checkout (no install needed).
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import speed  # noqa: E402  (after the path fix: it imports resnet_viz)

DURATIONS = 15  # the slowest tests, listed at the end of every run so the next slow one is visible


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real Chromium against a real `streamlit run` server")
    config.addinivalue_line("markers", "slow: a long real-training check (science), still run in CI")
    config.addinivalue_line("markers", "training(kind, seed=...): the science run a check reads (test_science.py)")
    if not config.option.durations:
        config.option.durations = DURATIONS


def pytest_report_header(config):
    # Measured before any test runs (and so before the app code could start a worker): the hang guards'
    # factor, printed so a CI log tells how fast its machine was.
    return speed.describe()


def pytest_collection_modifyitems(items):
    """The checks that read a background science run go last (in their own order): their runs then have the
    whole suite to train in, soaking up the cycles the other tests leave idle, instead of the suite waiting
    for them halfway and training nothing beside the tests after them."""
    items.sort(key=lambda item: item.get_closest_marker("training") is not None)


def pytest_collection_finish(session):
    """The science checks' runs start now, in the background (tests/trainings.py)."""
    if not session.config.option.collectonly:
        from trainings import TRAININGS
        TRAININGS.start(session.items)


def pytest_sessionfinish(session):
    from trainings import TRAININGS
    TRAININGS.stop()


def pytest_terminal_summary(terminalreporter):
    from trainings import TRAININGS
    if TRAININGS.jobs:
        terminalreporter.write_line(TRAININGS.describe())
    terminalreporter.write_line(speed.describe())


@pytest.fixture
def jobs():
    """Background jobs a test started: stopped and joined afterwards whatever happens."""
    started = []
    yield started
    for job in started:
        job.stop()
    for job in started:
        job.join(speed.hang_s(10))


@pytest.fixture
def trained():
    """trained(kind, seed) -> the finished Job of a science run (tests/trainings.py)."""
    from trainings import TRAININGS
    return TRAININGS.get


@pytest.fixture(scope="session", autouse=True)
def _playwright_expect_timeout():
    """Playwright's expect() waits 5 s by default: a hang guard like any other, so it scales too."""
    try:
        from playwright.sync_api import expect
    except ImportError:
        return
    expect.set_options(timeout=speed.hang_ms(10))


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that had a browser or a server open: every open page's visible text and screenshot
    (saved under test-results/, named in the report) and each server's log tail, in its report."""
    report = yield
    if report.failed and call.when in ("setup", "call"):
        from app_server import LIVE_BROWSERS, LIVE_SERVERS, diagnostics
        if LIVE_BROWSERS or LIVE_SERVERS:
            report.sections.append(("what the browser showed", diagnostics(item.nodeid)))
    return report
