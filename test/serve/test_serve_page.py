"""The search page in a real browser: headless Chromium (Debian chromium + chromium-driver, driven by
python3-selenium) types a query, waits for the results and checks thumbnails and order from the DOM
against the library's own search; "more like this" on a click; a screenshot goes to build/."""
import os
import shutil

import pytest

from conftest import ROOT, Server

SCREENSHOT = os.environ.get("JACLIP_SCREENSHOT", os.path.join(ROOT, "build", "serve-page.png"))
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("python3-selenium is not installed (tools/setup-deps installs it)")
    if not os.path.exists(CHROMEDRIVER):
        pytest.skip("chromedriver is missing (Debian chromium-driver; tools/setup-deps installs it)")
    options = webdriver.ChromeOptions()
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,900", "--no-proxy-server", "--disable-extensions"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_server(photos):
    s = Server("--index", f"photos={photos['index_path']}", "--threads", "2")
    yield s
    assert s.stop() == 0


def results(driver):
    return driver.execute_script("""
        return [...document.querySelectorAll('#results figure.hit')].map(f => ({
            label: f.dataset.label, row: +f.dataset.row,
            score: +f.querySelector('.score').textContent,
            loaded: f.querySelector('img').dataset.loaded === '1' && f.querySelector('img').complete,
            width: f.querySelector('img').naturalWidth}));""")


def wait_for(driver, predicate, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))


def test_search_page_text_query_and_more_like_this(browser, page_server, model, photos):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    browser.get(f"http://127.0.0.1:{page_server.port}/")
    query = "犬の写真"
    box = browser.find_element(By.ID, "query")
    box.send_keys(query)
    box.send_keys(Keys.ENTER)
    want = photos["index"].search_text(model, query, 24)
    assert len(want) == 8
    got = wait_for(browser, lambda d: (lambda r: r if len(r) == 8 and all(x["loaded"] for x in r) else None)(results(d)))
    assert [g["label"] for g in got] == [h.label for h in want]
    assert all(g["width"] == 200 for g in got)  # the server's thumbnails, decoded by the browser
    assert [g["score"] for g in got] == pytest.approx([round(h.score, 3) for h in want], abs=1.5e-3)
    assert query in browser.find_element(By.ID, "status").text
    browser.save_screenshot(SCREENSHOT)
    assert os.path.getsize(SCREENSHOT) > 1000

    # Click the third card: its own photo comes first, then its neighbours as the library ranks them.
    browser.find_elements(By.CSS_SELECTOR, "#results figure.hit")[2].click()
    row = want[2].row
    idx, _ = photos["index"].search(photos["index"].embeddings(row, 1), 24)
    got = wait_for(browser, lambda d: (lambda r: r if r and r[0]["row"] == row and all(x["loaded"] for x in r)
                                       else None)(results(d)))
    assert [g["row"] for g in got] == idx[0].tolist()
    assert got[0]["score"] == pytest.approx(1.0, abs=1e-3)
