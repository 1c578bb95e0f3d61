"""Save, open and share in a real browser: a link sets up a lesson, the run is saved as a real download and
opened in another session with the same numbers; a damaged file is refused and changes nothing."""
import zipfile

import pytest
from app_server import IDLE, running_app
from playwright.sync_api import expect
from speed import hang_ms

pytestmark = pytest.mark.browser

LINK = "/?preset=shortcut_scaling&steps=20&lr=fast&model=depth:8&model=depth:8,beta:0.5"


def new_page(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1400}, accept_downloads=True)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=hang_ms(60))
    return page


CHART_DATA = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    p => JSON.stringify(p.data, (k, v) => ArrayBuffer.isView(v) ? Array.from(v) : v))"""


def charts(page) -> list[str]:
    """Every chart's data as plotly holds it in the page: what the student sees, number for number."""
    return page.evaluate(CHART_DATA)


def test_a_link_a_saved_run_and_reopening_it(browser, tmp_path):
    with running_app() as server:
        page = new_page(browser, server + LINK)
        expect(page.get_by_text("The link's setting “lr” was ignored")).to_be_visible()
        expect(page.get_by_role("spinbutton", name="Steps", exact=True)).to_have_value("20")
        page.get_by_role("button", name="Train").click()
        page.wait_for_function("() => document.body.innerText.includes('Done · step 20/20')", timeout=hang_ms(120))
        page.wait_for_selector(IDLE)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 4", timeout=hang_ms(30))
        shown = charts(page)
        assert len(shown) >= 4 and "res-8-b0.5" in shown[0]
        # The address bar and the Share menu hold a link to these settings (the bad lr is gone).
        assert "steps=20" in page.url and "lr=" not in page.url
        page.get_by_role("button", name="Share link").click()
        expect(page.locator("[data-testid=stCode]")).to_contain_text("model=depth:8,beta:0.5")
        page.keyboard.press("Escape")
        # Save: a real download of one zip with the metrics, the checkpoints and a PNG of each chart.
        page.get_by_role("button", name="Save run").click()
        with page.expect_download(timeout=hang_ms(120)) as download:
            page.get_by_role("button", name="Download .zip").click()
        saved = tmp_path / "run.zip"
        download.value.save_as(saved)
        names = set(zipfile.ZipFile(saved).namelist())
        assert {"run.json", "metrics.csv", "metrics.json", "models/0.pt", "models/1.pt", "charts/loss.png"} <= names
        page.keyboard.press("Escape")

        # Another session opens it: the same table, the same charts, the run's settings in the sidebar.
        other = new_page(browser, server)
        other.get_by_role("button", name="Open saved run").click()
        other.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(
            files=[{"name": "broken.zip", "mimeType": "application/zip", "buffer": saved.read_bytes()[:5000]}])
        expect(other.get_by_text("This file is not a run saved by ResNet Lab")).to_be_visible(timeout=hang_ms(30))
        expect(other.get_by_text("No run yet")).to_be_visible()  # nothing changed
        other.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(saved))
        expect(other.get_by_text("Opened from run.zip.")).to_be_visible(timeout=hang_ms(60))
        other.wait_for_selector(IDLE)
        other.wait_for_function("n => document.querySelectorAll('.js-plotly-plot').length >= n", arg=len(shown))
        assert charts(other) == shown, "the reopened run must draw identical charts"
        expect(other.get_by_role("spinbutton", name="Steps", exact=True)).to_have_value("20")
        for p in (page, other):
            assert p.locator("[data-testid=stException]").count() == 0
            assert not p.errors, p.errors
