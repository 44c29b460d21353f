"""The HTML report in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

One browser session serves the whole module. Without a browser the tests skip, naming the packages.
Nothing downloads a browser or a driver: the system binaries are passed explicitly.
"""
import csv
import io
import shutil
import time

import numpy as np
import pytest
from _report_data import noisy_recording
from PIL import Image

from interpretdl_noise import clean, report
from interpretdl_noise.cli import main
from interpretdl_noise.interpreter import registry

N, K = 120, 30
# every registered detector that scores a recording (confident learning needs the raw data)
METHODS = [n for n in registry.detector_names() if not registry.detector_class(n).needs_data]
NO_BROWSER = ("no headless browser: install Debian's `chromium` and `chromium-driver` packages "
              "(apt-get install -y chromium chromium-driver; .ci/run does this) and the `selenium` Python package")


def _binaries():
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    return browser, shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(NO_BROWSER)
    binary, driver_path = _binaries()
    if binary is None or driver_path is None:
        pytest.skip(NO_BROWSER)
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1366,900", f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as exc:  # noqa: BLE001  (a broken install is reported as a skip with the reason)
        pytest.skip(f"{NO_BROWSER}; starting it failed: {exc}")
    driver.set_page_load_timeout(30)
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    path, info = noisy_recording(folder / "training_dynamics.npz", n=N)
    rep = report(path, images=info["images"], class_names=["cat", "dog", "bird", "fish"], top=K, method="bhdf")
    html = rep.save(folder / "report.html")
    (folder / "other.html").write_text("<!DOCTYPE html><title>other</title><p>another page")
    return {"url": html.as_uri(), "other": (folder / "other.html").as_uri(), "content": rep.content, "npz": path,
            "folder": folder}


def _until_loaded(driver, url, timeout=30):
    """Wait until the report at ``url`` is the loaded document again (after a reload or history step).

    chromedriver's own refresh() / back() wait for the navigation and, on a loaded machine, can time out
    with "aborted by navigation"; a script-started navigation plus this explicit wait cannot.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.current_url.startswith(url) and d.execute_script(
            "return window.__before_navigation === undefined && document.readyState === 'complete' && "
            "!!document.getElementById('cards')"))


def reload(driver, url):
    driver.execute_script("window.__before_navigation = true; location.reload();")
    _until_loaded(driver, url)


def go_back(driver, url):
    driver.execute_script("window.__before_navigation = true; history.back();")
    _until_loaded(driver, url)


def fresh(driver, url):
    """Open the report with no stored decisions and no view state in the URL."""
    driver.get(url)
    driver.execute_script("localStorage.clear(); history.replaceState(null, '', location.pathname);")
    reload(driver, url)
    driver.get_log("browser")  # drop what came before


def visible(driver, attr="data-sample-id"):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#cards .card')).filter(c => !c.hidden)"
        ".map(c => c.getAttribute(arguments[0]));", attr)


def choose(driver, select_id, value):
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", select_id)).select_by_value(value)


def type_search(driver, text):
    box = driver.find_element("id", "search")
    driver.execute_script("arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input'));", box)
    if text:
        box.send_keys(text)


def card(driver, sample_id):
    return driver.find_element("css selector", f'#cards .card[data-sample-id="{sample_id}"]')


def test_loads_without_errors_or_requests_and_shows_k_cards(browser, page):
    fresh(browser, page["url"])
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert len(visible(browser)) == K
    assert browser.find_element("id", "visible-count").text == f"{K} of {K} cards shown"
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert browser.execute_script("return document.querySelectorAll('#cards img').length") == K
    loaded = browser.execute_script("return Array.from(document.querySelectorAll('#cards img'))"
                                    ".every(i => i.complete && i.naturalWidth > 0)")
    assert loaded, "a thumbnail did not decode"


def test_sorting_by_each_detector_orders_cards_by_that_score(browser, page):
    fresh(browser, page["url"])
    content = page["content"]
    options = browser.execute_script("return Array.from(document.querySelectorAll('#sort-by option'))"
                                     ".map(o => o.value)")
    assert options == list(content.scores) and set(options) == set(METHODS)
    rows = content.rows
    for name in reversed(options):  # end on the default so the initial order is checked after a round trip
        choose(browser, "sort-by", name)
        scores = [float(s) for s in visible(browser, f"data-score-{name}")]
        assert scores == sorted(scores, reverse=True), name
        expected = rows[np.argsort(-content.scores[name][rows], kind="stable")]
        assert [int(i) for i in visible(browser)] == [int(content.sample_ids[r]) for r in expected], name
    assert "sort=" not in browser.current_url  # the default sort leaves the URL clean


def test_filters_and_search_change_the_visible_count(browser, page):
    fresh(browser, page["url"])
    content = page["content"]
    ids = content.sample_ids[content.rows]
    given, suggested = content.given[content.rows], content.suggested[content.rows]
    g = int(np.bincount(given).argmax())
    choose(browser, "filter-given", str(g))
    assert len(visible(browser)) == int((given == g).sum()) < K
    assert {int(v) for v in visible(browser, "data-given")} == {g}
    s = int(suggested[given == g][0])
    choose(browser, "filter-suggested", str(s))
    assert len(visible(browser)) == int(((given == g) & (suggested == s)).sum())
    choose(browser, "filter-given", "")
    choose(browser, "filter-suggested", "")
    choose(browser, "filter-flag", "flagged")
    assert len(visible(browser)) == int(content.flagged[content.rows].sum())
    choose(browser, "filter-flag", "")
    token = str(ids[3])[-1]  # one digit: several ids contain it
    type_search(browser, token)
    want = sorted(int(i) for i in ids if token in str(i))
    assert sorted(int(i) for i in visible(browser)) == want and 0 < len(want) < K
    type_search(browser, f"{ids[0]}, {ids[5]}")
    assert {int(ids[0]), int(ids[5])} <= {int(i) for i in visible(browser)}
    type_search(browser, "no-such-id")
    assert visible(browser) == [] and browser.find_element("id", "empty").is_displayed()
    type_search(browser, "")
    assert len(visible(browser)) == K


def _wait_for(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not downloaded within {timeout} s")


def test_review_export_and_clean_applies_it(browser, page, tmp_path, capsys):
    from selenium.webdriver.support.ui import Select

    fresh(browser, page["url"])
    content = page["content"]
    a, b, c = (int(i) for i in visible(browser)[:3])
    row_c = int(np.flatnonzero(content.sample_ids == c)[0])
    new_label = (int(content.given[row_c]) + 1) % 4
    card(browser, a).find_element("css selector", '[data-action="keep"]').click()
    card(browser, b).find_element("css selector", '[data-action="keep"]').click()
    card(browser, b).find_element("css selector", '[data-action="drop"]').click()  # a change of mind
    card(browser, c).find_element("css selector", '[data-action="relabel"]').click()
    picker = card(browser, c).find_element("css selector", "select.relabel-to")
    assert picker.is_displayed()
    Select(picker).select_by_value(str(new_label))
    assert browser.find_element("id", "decision-count").text == "3 decisions"
    assert card(browser, b).find_element("css selector", '[data-action="drop"]').get_attribute("aria-pressed") == "true"
    target = browser.downloads / "decisions.csv"
    if target.exists():
        target.unlink()
    browser.find_element("id", "export-decisions").click()
    text = _wait_for(target)
    assert text == f"sample_id,action,new_label\n{a},keep,\n{b},drop,\n{c},relabel,{new_label}\n"
    decisions = tmp_path / "decisions.csv"
    shutil.move(str(target), decisions)

    result = clean(page["npz"], method="bhdf", decisions=decisions)
    actions = dict(zip(result.issues["sample_id"], result.issues["action"]))
    assert (actions[a], actions[b], actions[c]) == ("keep", "drop", "relabel")
    assert b not in set(result.keep_indices) and {a, c} <= set(result.keep_indices)
    position = int(np.flatnonzero(result.issues["sample_id"].to_numpy() == c)[0])
    assert int(result.labels[position]) == new_label

    out = tmp_path / "clean"
    assert main(["clean", str(page["npz"]), "--method", "bhdf", "--out", str(out), "--decisions", str(decisions)]) == 0
    capsys.readouterr()
    issues = {int(r["sample_id"]): r for r in csv.DictReader(open(out / "issues.csv"))}
    assert (issues[a]["action"], issues[b]["action"], issues[c]["action"]) == ("keep", "drop", "relabel")
    kept = (out / "keep_indices.csv").read_text().split()
    assert str(b) not in kept and str(a) in kept and str(c) in kept


def test_reload_and_back_keep_view_and_decisions(browser, page):
    fresh(browser, page["url"])
    content = page["content"]
    g = int(content.given[content.rows[0]])
    choose(browser, "filter-given", str(g))
    first = visible(browser)[0]
    card(browser, first).find_element("css selector", '[data-action="keep"]').click()
    shown = len(visible(browser))
    assert f"given={g}" in browser.current_url
    reload(browser, page["url"])
    assert browser.find_element("id", "filter-given").get_attribute("value") == str(g)
    assert len(visible(browser)) == shown
    assert card(browser, first).find_element("css selector", '[data-action="keep"]').get_attribute(
        "aria-pressed") == "true"
    assert browser.find_element("id", "decision-count").text == "1 decision"
    browser.get(page["other"])
    go_back(browser, page["url"])
    assert browser.current_url.startswith(page["url"])
    assert browser.find_element("id", "filter-given").get_attribute("value") == str(g)
    assert len(visible(browser)) == shown
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_screenshot_is_not_blank(browser, page):
    fresh(browser, page["url"])
    png = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    pixels = np.asarray(png)
    assert png.size[0] >= 1000
    packed = (pixels[..., 0].astype(np.int32) << 16) | (pixels[..., 1].astype(np.int32) << 8) | pixels[..., 2]
    assert pixels.std() > 20 and np.unique(packed).size > 50
