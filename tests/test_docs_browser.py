"""The documentation site as a person sees it: headless Chromium opens the built pages.

Run with ``python -m pytest -m docs`` (needs Debian's ``chromium`` and ``chromium-driver``;
``.ci/run`` installs them). The site is built (a handful of ops) into
``docs/_build/browser-test/html-*`` and served over HTTP on the loopback address; each page is
opened, screenshotted into ``docs/_build/browser-test/screenshots/``, and checked: the
formula text is there, every image loaded (a failed image load fails the test), the source
tabs are there and switch, and the browser logged no error.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "_build" / "browser-test"
OPS = ["stablemax_cross_entropy", "poincare_expmap", "layer_norm", "lion_step", "facility_location_greedy"]
# a line of each page's docstring math, as written (the formula text a reader looks for)
FORMULAS = {
    "stablemax_cross_entropy": "log s(x) = sign(x)·log1p(|x|)",
    "layer_norm": "y_j   = γ_j · x̂_j + β_j",
}


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail(
            "the browser test needs Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def server():
    from test_docs import build_site

    html = OUT / f"html-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    shutil.rmtree(html, ignore_errors=True)
    status, warnings = build_site(html, OPS)
    assert status == 0 and warnings == "", warnings
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(browser, url: str):
    browser.get(url)
    browser.get_log("browser")  # start each page with an empty log
    browser.refresh()
    return browser


def _errors(browser) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def _images(browser) -> list[dict]:
    return browser.execute_script(
        "return Array.from(document.images).map(i => "
        "({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth}));"
    )


@pytest.mark.parametrize("name", OPS)
def test_op_page_in_the_browser(server, browser, name):
    from selenium.webdriver.common.by import By

    import refimpl

    op = refimpl.get(name)
    _open(browser, f"{server}/generated/ops/{name}.html")
    text = browser.find_element(By.TAG_NAME, "article").text
    assert name in browser.title
    if name in FORMULAS:
        assert FORMULAS[name] in text, f"{name}: the formula text is not on the page"
    assert "Math and derivation" in text and "Conformance" in text

    images = _images(browser)
    broken = [i["src"] for i in images if not i["ok"]]
    assert not broken, f"{name}: images that did not load: {broken}"
    plots = [i for i in images if i["src"].endswith(f"/{name}.png")]
    assert bool(plots) == op.is_differentiable, f"{name}: plot present {bool(plots)}"
    if plots:
        assert plots[0]["w"] >= 600

    # the source tabs: the reference is shown first; the Numba tab switches to the Numba source
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".sd-tab-set > label")]
    assert labels[:4] == ["Reference (NumPy)", "Numba", "CuPy", "Conformance cases"], labels
    contents = browser.find_elements(By.CSS_SELECTOR, ".sd-tab-set > .sd-tab-content")
    assert contents[0].is_displayed() and not contents[1].is_displayed()
    tab = browser.find_elements(By.CSS_SELECTOR, ".sd-tab-set > label")[1]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", tab)
    assert contents[1].is_displayed() and not contents[0].is_displayed()
    numba_text = contents[1].text
    if refimpl.backend("numba").supports(name):
        assert "refimpl_numba" in numba_text or "numba" in numba_text.lower()
    else:
        assert "No Numba implementation" in numba_text

    shots = OUT / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0);")
    browser.save_screenshot(str(shots / f"{name}.png"))
    errors = _errors(browser)
    assert not errors, f"{name}: the page logged errors: {errors}"


def test_search_finds_an_op(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, f"{server}/search.html?q=stablemax")
    WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#search-results ul.search li a"))
    )
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#search-results li a")]
    assert any(
        link.split("?")[0].endswith("/generated/ops/stablemax_cross_entropy.html") for link in links
    ), links
    browser.save_screenshot(str(OUT / "screenshots" / "search.png"))
    assert not _errors(browser)


def test_a_broken_image_is_caught(server, browser):
    """The check above can fail: an image whose file is missing is reported as not loaded."""
    _open(browser, f"{server}/generated/ops/stablemax_cross_entropy.html")
    browser.execute_script(
        "const i = document.createElement('img'); i.src = '_images/missing.png'; "
        "document.body.appendChild(i);"
    )
    import time

    time.sleep(1)
    assert any(not i["ok"] and i["src"].endswith("missing.png") for i in _images(browser))
    assert any("missing.png" in e for e in _errors(browser))
