"""A phone's screen (390x844) in a real Chromium: on the Lab after a short run, on Draw and on every tab of
Experiments, no chart title, panel title, axis title or tick label runs into another, nor into a heatmap it
does not belong to, and no Streamlit header or caption into a chart's text."""
import pytest
from app_server import IDLE, running_app
from speed import hang_ms

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
# The default lesson's four nets (plain-20, res-20, plain-56, res-56: the names a class sees), 10 steps.
SHORT_RUN = "/?steps=10"
GAP = 3  # px each side: titles closer than a space's width run together ("plain-20res-20plain-56res-56")

# Every text of the page that must stand alone: each plotly chart's title, panel titles (annotations), axis
# titles, tick labels and legend entries, and Streamlit's headers and captions.
TEXTS = """() => {
  const charts = [...document.querySelectorAll('.js-plotly-plot')];
  const kinds = {'.gtitle': 'title', '.annotation-text': 'annotation', '.g-xtitle text': 'axis title',
                 '.g-ytitle text': 'axis title', '.xtick text': 'tick', '.ytick text': 'tick',
                 '.legendtext': 'legend', '.cbtitle text': 'colour bar'};
  const out = [];
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  charts.forEach((chart, c) => {
    for (const [sel, kind] of Object.entries(kinds)) {
      chart.querySelectorAll(sel).forEach(e =>
        out.push({kind, chart: c, text: e.textContent.slice(0, 50), box: box(e)}));
    }
    chart.querySelectorAll('.hm image, .heatmaplayer image').forEach(e =>
      out.push({kind: 'heatmap', chart: c, text: 'heatmap', box: box(e)}));
  });
  document.querySelectorAll('[data-testid=stMain] [data-testid=stCaptionContainer], [data-testid=stMain] h1, ' +
                            '[data-testid=stMain] h2, [data-testid=stMain] h3').forEach(e =>
    out.push({kind: 'page text', chart: -1, text: e.textContent.slice(0, 50), box: box(e)}));
  return out.filter(o => o.box[2] - o.box[0] > 0 && o.box[3] - o.box[1] > 0);
}"""


def overlaps(items: list[dict], slack: float = 1.0) -> list[str]:
    """Pairs of texts whose boxes cross by more than `slack` px each way (titles: or come closer than 2 x
    GAP px), and titles or tick labels drawn over a heatmap; a legend's entries are plotly's own layout."""
    found = []
    texts = [dict(i, box=_widened(i)) for i in items if i["kind"] != "heatmap"]
    for a_index, a in enumerate(texts):
        for b in texts[a_index + 1:]:
            if a["kind"] == b["kind"] == "legend" and a["chart"] == b["chart"]:
                continue  # plotly lays out its own legend; its boxes include the symbol's padding
            if _cross(a["box"], b["box"], slack):
                found.append(f"{a['kind']} {a['text']!r} / {b['kind']} {b['text']!r}")
    for image in (i for i in items if i["kind"] == "heatmap"):
        for text in texts:
            over = text["kind"] in ("tick", "annotation", "title", "axis title")
            if over and _cross(image["box"], text["box"], slack):
                found.append(f"{text['kind']} {text['text']!r} over a heatmap of chart {image['chart']}")
    return found


def _widened(item: dict) -> list[float]:
    left, top, right, bottom = item["box"]
    pad = GAP if item["kind"] in ("title", "annotation", "axis title", "page text") else 0
    return [left - pad, top, right + pad, bottom]


def _cross(a, b, slack: float) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > slack and min(a[3], b[3]) - max(a[1], b[1]) > slack


@pytest.fixture(scope="module")
def server():
    with running_app() as url:
        yield url


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    yield page
    context.close()


def settled(page, extra_ms: int = 1500) -> None:
    page.wait_for_selector(IDLE, timeout=hang_ms(60))
    page.wait_for_timeout(extra_ms)  # plotly lays its text out after Streamlit has drawn the element
    page.wait_for_selector(IDLE, timeout=hang_ms(60))


def assert_apart(page, where: str, least_charts: int) -> None:
    items = page.evaluate(TEXTS)
    charts = {i["chart"] for i in items if i["chart"] >= 0}
    assert len(charts) >= least_charts, f"{where}: only {len(charts)} charts drawn"
    clashes = overlaps(items)
    assert not clashes, f"{where} at 390x844: " + "; ".join(clashes[:8])


def test_the_lab_after_a_short_run_has_no_text_over_other_text(phone, server):
    phone.goto(server + SHORT_RUN)
    settled(phone)
    phone.get_by_role("button", name="Train").click()
    phone.wait_for_function("() => document.body.innerText.includes('Done ·')", timeout=hang_ms(180))
    settled(phone, 3000)
    phone.locator("[data-testid=stDataFrame] >> visible=true").first.wait_for(timeout=hang_ms(30))  # the summary
    assert_apart(phone, "Lab", least_charts=5)  # loss, accuracy, gradient heatmaps, first/last, identity


def test_draw_with_a_test_digit_has_no_text_over_other_text(phone, server):
    phone.goto(server + "/draw")
    settled(phone)
    phone.get_by_text("Test digit", exact=True).click()
    phone.wait_for_selector(".js-plotly-plot", timeout=hang_ms(60))
    settled(phone, 3000)
    assert_apart(phone, "Draw", least_charts=5)  # predictions, two models' blocks, mean and spread


def test_every_tab_of_experiments_has_no_text_over_other_text(phone, server):
    phone.goto(server + "/experiments")
    settled(phone)
    for tab in ("Depth sweep", "Lesion study", "Loss landscape", "Shattered gradients"):
        phone.get_by_role("tab", name=tab).click()
        settled(phone, 2500)
        assert_apart(phone, f"Experiments, {tab}", least_charts=1)
