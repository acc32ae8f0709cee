"""The search page in a real browser: headless Chromium (Debian chromium + chromium-driver, driven by
python3-selenium) types a query, waits for the results and checks thumbnails and order from the DOM
against the library's own search; "more like this" on a click; a screenshot goes to build/serve-page/.
The page's other features: test_serve_page_ui.py, test_serve_page_files.py."""
import pytest

from conftest import Server
from pagekit import chrome, results, shot, wait_for


@pytest.fixture(scope="module")
def browser():
    driver = chrome("en-US,en")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_server(photos):
    s = Server("--index", f"photos={photos['index_path']}", "--threads", "2")
    yield s
    assert s.stop() == 0


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
    shot(browser, "text-query")

    # Click the third card: its own photo comes first, then its neighbours as the library ranks them.
    browser.find_elements(By.CSS_SELECTOR, "#results figure.hit")[2].click()
    row = want[2].row
    idx, _ = photos["index"].search(photos["index"].embeddings(row, 1), 24)
    got = wait_for(browser, lambda d: (lambda r: r if r and r[0]["row"] == row and all(x["loaded"] for x in r)
                                       else None)(results(d)))
    assert [g["row"] for g in got] == idx[0].tolist()
    assert got[0]["score"] == pytest.approx(1.0, abs=1e-3)
