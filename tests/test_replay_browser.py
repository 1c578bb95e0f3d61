"""Replay and reconnect in a real browser: a second session pressing Train on settings the server already
trained watches that run unfold again (and may train it live); a reload mid-run is back in the run; a closed
tab's run stops once its grace is over. A real `streamlit run` server and Debian's Chromium (app_server.py)."""
import re
import time

import pytest
from app_server import IDLE, running_app
from playwright.sync_api import expect
from speed import hang_ms
from test_browser import progress_text, step_of

pytestmark = pytest.mark.browser

GRACE_S = 15  # the server's RESNET_LAB_GRACE_S: longer than a reload takes, short enough to wait out
TINY = "/?model=depth:8,skip:0&model=depth:8"  # two tiny nets (share.py's link format)


@pytest.fixture(scope="module")
def server():
    with running_app(env={"RESNET_LAB_GRACE_S": str(GRACE_S)}) as url:
        yield url


def open_page(browser, url, width=1400, height=1000):
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=hang_ms(60))
    return page


def wait_text(page, pattern: str, seconds: float = 60) -> None:
    page.wait_for_function(f"() => /{pattern}/.test(document.body.innerText)", timeout=hang_ms(seconds))


def run_code_of(url: str) -> str:
    return re.search(r"[?&]run=(\w+)", url).group(1)


def run_code(page) -> str:
    return run_code_of(page.url)


def test_train_on_settings_already_trained_replays_them_and_can_train_live(browser, server):
    link = server + TINY + "&steps=120&seed=11"
    first = open_page(browser, link)
    first.get_by_role("button", name="Train").click()
    wait_text(first, "Done · step 120\\/120", 180)
    trained = first.url
    first.context.close()

    second = open_page(browser, link)
    second.get_by_role("button", name="Train").click()
    expect(second.get_by_text("This server trained these settings before: replaying that run")).to_be_visible(
        timeout=hang_ms(60))
    # The replay unfolds like a run: its status line's step rises, it is not Done at once.
    seen, deadline = [], time.monotonic() + 120
    while len(seen) < 2 and time.monotonic() < deadline:
        text = progress_text(second)
        if text.startswith("Replay 1×") and (not seen or step_of(text) > seen[-1]):
            seen.append(step_of(text))
        assert not text.startswith("Done"), f"the replay ended at once; seen {seen}: {text}"
        time.sleep(0.2)
    assert len(seen) == 2 and seen[0] < seen[1] < 120, seen
    assert run_code(second) != run_code_of(trained), "a replay is this session's own, with its own code"
    # Pause holds the replay's clock where it is; Skip to the end shows the whole run.
    second.get_by_role("button", name="Pause").click()
    wait_text(second, "Paused · step \\d+\\/120", 30)
    held = step_of(progress_text(second))
    time.sleep(2)
    assert step_of(progress_text(second)) == held
    second.get_by_role("button", name="Skip to the end").click()
    wait_text(second, "Done · step 120\\/120", 30)
    expect(second.get_by_text("The replay has reached the end of the run")).to_be_visible()
    second.wait_for_selector(IDLE)  # the page's rerun as the replay ended: a click now is not lost in it
    # A live run instead: it really trains, from step 0.
    second.get_by_role("button", name="Train again live").click()
    wait_text(second, "Training · step [0-9]", 120)
    expect(second.get_by_text("replaying that run")).to_have_count(0)
    second.get_by_role("button", name="Stop", exact=True).click()
    wait_text(second, "(Stopped|Done) · step", 60)
    assert second.locator("[data-testid=stException]").count() == 0 and not second.errors, second.errors
    second.context.close()


def test_a_reload_mid_run_is_back_in_the_run(browser, server):
    page = open_page(browser, server + TINY + "&steps=3000&seed=12")
    page.get_by_role("button", name="Train").click()
    wait_text(page, "Training · step [1-9]", 120)
    code = run_code(page)
    page.reload()
    page.wait_for_selector(IDLE, timeout=hang_ms(60))
    expect(page.get_by_text(re.compile(r"Reconnected to your run at step \d+ of 3000"))).to_be_visible(
        timeout=hang_ms(30))
    wait_text(page, "Training · step [1-9]", 60)
    assert step_of(progress_text(page)) > 0 and run_code(page) == code
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_enabled()
    page.get_by_role("button", name="Stop", exact=True).click()
    wait_text(page, "Stopped · step", 60)
    assert page.locator("[data-testid=stException]").count() == 0 and not page.errors, page.errors
    page.context.close()


def test_a_closed_tabs_run_trains_through_its_grace_then_stops_and_frees_the_trainer(browser, server):
    page = open_page(browser, server + TINY + "&steps=3000&seed=13")
    page.get_by_role("button", name="Train").click()
    wait_text(page, "Training · step [1-9]", 120)
    address = page.url
    page.context.close()  # the student closes the tab mid-run
    # Opened again within the grace (another device, the same address): the run is still training.
    again = open_page(browser, address)
    expect(again.get_by_text(re.compile(r"Reconnected to your run at step \d+"))).to_be_visible(timeout=hang_ms(30))
    wait_text(again, "Training · step [1-9]", 60)
    again.context.close()  # and closed for good
    time.sleep(GRACE_S + 5)
    later = open_page(browser, address)
    # The run has stopped: the address finds it stopped, or no longer at all.
    wait_text(later, "(it ended at step \\d+ of 3000 \\(Stopped\\)|is no longer on this server)", 30)
    expect(later.get_by_role("button", name="Train")).to_be_enabled()
    # Its trainer is free: a new run trains to the end (it would wait behind the 3000 steps otherwise).
    later.goto(server + "/?model=depth:8&steps=10")
    later.wait_for_selector(IDLE, timeout=hang_ms(60))
    later.get_by_role("button", name="Train").click()
    wait_text(later, "Done · step 10\\/10", 120)
    later.context.close()
