"""The search page in headless Chromium (issue 25): its language (Japanese unless the browser prefers
English), the filters against brute force over the library's rows, pages loaded by scrolling, readable
errors, and a 390 px phone screen. Screenshots go to build/serve-page/."""
import time

import numpy as np
import pytest

from conftest import Server
from pagekit import DAY, chrome, ja, library, results, search_text, server, shot, status, wait_for  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def en():
    driver = chrome("en-US,en")
    yield driver
    driver.quit()


def open_page(driver, server):
    driver.get(f"http://127.0.0.1:{server.port}/")
    wait_for(driver, lambda d: d.execute_script("return document.getElementById('index').options.length") > 0)


def state(driver, box="results"):
    return driver.execute_script("return document.getElementById(arguments[0]).dataset.state", box)


def load_all(driver, box="results", timeout=30):
    """Scrolls to the end of the list until the page says it is done; the cards then."""
    def done(d):
        d.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        return state(d, box) in ("done", "error")
    wait_for(driver, done, timeout)
    return results(driver, "#" + box)


def brute_force(library, model, text, folder=None, after=None, before=None, types=None):
    """Labels best first (ties to the lower row), filtered as the API documents."""
    index = library["index"]
    labels, emb = index.labels(), index.embeddings()
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    q = model.encode_texts([text])[0]
    scores = emb @ (q / np.linalg.norm(q))
    rows = [i for i, label in enumerate(labels)
            if (folder is None or label.startswith(folder + "/"))
            and (after is None or library["mtimes"][label] >= after)
            and (before is None or library["mtimes"][label] < before)
            and (types is None or label.rsplit(".", 1)[1] in types)]
    rows.sort(key=lambda i: (-scores[i], i))
    return [labels[i] for i in rows], {labels[i]: scores[i] for i in rows}


def metric(server, line):
    text = server.request("GET", "/metrics")[2].decode()
    return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(line + " ")), 0.0)


# ---- language ----

def test_japanese_by_default_english_when_the_browser_prefers_it(ja, en, server):
    from selenium.webdriver.common.by import By
    want = {  # what each language shows: visible text, not keys
        ja: ("ja", "写真検索", "重複チェック", "検索", "写真を言葉で探す", "の検索結果", "元の写真"),
        en: ("en", "Photo search", "Duplicates", "Search", "Find photos by words", "results for", "Original"),
    }
    for driver, (lang, tab, dupes, go, placeholder, found, open_text) in want.items():
        open_page(driver, server)
        assert driver.execute_script("return navigator.languages[0]").startswith(lang)
        assert driver.execute_script("return document.documentElement.lang") == lang
        assert driver.find_element(By.ID, "tab-search").text == tab
        assert driver.find_element(By.ID, "tab-dupes").text == dupes
        assert driver.find_element(By.ID, "go").text == go
        assert driver.find_element(By.ID, "query").get_attribute("placeholder").startswith(placeholder)
        search_text(driver, "海")
        wait_for(driver, lambda d: state(d) == "more")
        assert found in status(driver)[0]
        assert {r["open"] for r in results(driver)} and all(
            e.text == open_text for e in driver.find_elements(By.CSS_SELECTOR, "#results a.open"))
        # Every element that takes a string got one (none left empty or showing its key).
        empty = driver.execute_script("""return [...document.querySelectorAll('[data-i18n]')]
            .filter(e => !e.textContent.trim() || e.textContent === e.dataset.i18n).map(e => e.dataset.i18n)""")
        assert empty == []
        shot(driver, f"lang-{lang}")
    # One table, both languages complete; a browser preferring neither language gets Japanese.
    got = ja.execute_async_script("""const done = arguments[arguments.length - 1];
        import('/i18n.js').then(m => done({
            ja: Object.keys(m.STRINGS.ja).sort(), en: Object.keys(m.STRINGS.en).sort(),
            blank: Object.entries(m.STRINGS).flatMap(([l, t]) => Object.keys(t).filter(k => !t[k].trim())),
            picks: [['fr-FR', 'de'], ['fr', 'en-GB', 'ja'], ['ja-JP', 'en'], [], ['EN-us']].map(m.pickLanguage)}));""")
    assert got["ja"] == got["en"] and len(got["ja"]) > 40 and got["blank"] == []
    assert got["picks"] == ["ja", "en", "ja", "ja", "en"]


# ---- pages ----

def test_scrolling_loads_more_pages_without_duplicates_and_stops_at_the_end(en, server, library, model):
    open_page(en, server)
    searches = 'jaclip_requests_total{route="search",code="200"}'
    before = metric(server, searches)
    search_text(en, "海")
    wait_for(en, lambda d: state(d) in ("more", "done"))
    first = results(en)
    assert len(first) in (24, 48) and state(en) == "more"  # a page of 24, maybe two to fill the screen
    got = load_all(en)
    want, scores = brute_force(library, model, "海")
    assert len(want) == 60
    assert [g["label"] for g in got] == want  # every row once, in the library's order
    assert [g["score"] for g in got] == pytest.approx([round(float(scores[w]), 3) for w in want], abs=1.5e-3)
    assert "(that is all)" in status(en)[0]
    assert metric(server, searches) - before == 3  # 24 + 24 + 12: the short page ends it
    en.execute_script("window.scrollTo(0, 0); window.scrollTo(0, document.body.scrollHeight)")
    time.sleep(0.5)
    assert len(results(en)) == 60 and metric(server, searches) - before == 3
    shot(en, "pages-end")


# ---- filters ----

def set_filters(driver, folder=None, after=None, until=None, types=()):
    """Opens the filters, sets them as a person would, and applies them."""
    from selenium.webdriver.common.by import By
    driver.execute_script("window.scrollTo(0, 0)")  # the filters sit above the results
    if not driver.find_element(By.ID, "filters").get_attribute("open"):
        driver.find_element(By.CSS_SELECTOR, "#filters summary").click()
    box = driver.find_element(By.ID, "folder")
    box.clear()
    if folder:
        box.send_keys(folder)
    for name, value in (("after", after), ("before", until)):  # date inputs: typed keys depend on the locale
        driver.execute_script("const e = document.getElementById(arguments[0]); e.value = arguments[1];"
                              "e.dispatchEvent(new Event('change', {bubbles: true}))", name, value or "")
    for check in driver.find_elements(By.CSS_SELECTOR, "#types input"):
        if check.is_selected() != (check.get_attribute("value") in types):
            check.click()
    driver.find_element(By.ID, "apply-filters").click()


def test_filters_equal_brute_force(ja, server, library, model):
    from selenium.webdriver.common.by import By
    open_page(ja, server)
    search_text(ja, "花")
    load_all(ja)
    base = library["base"] - 12 * 3600  # local midnight of 2024-05-01
    cases = [
        (dict(folder="a"), dict(folder="a")),
        (dict(folder="a/deep", after="2024-05-03"), dict(folder="a/deep", after=base + 2 * DAY)),
        (dict(after="2024-05-03", until="2024-05-07"), dict(after=base + 2 * DAY, before=base + 7 * DAY)),
        (dict(types=("png",)), dict(types={"png"})),
        (dict(folder="b", until="2024-05-05", types=("jpg,jpeg",)),
         dict(folder="b", before=base + 5 * DAY, types={"jpg", "jpeg"})),
        (dict(until="2024-05-01"), dict(before=base + DAY)),
        (dict(folder="nowhere"), dict(folder="nowhere")),
    ]
    for ui, api in cases:
        set_filters(ja, **ui)
        wait_for(ja, lambda d: state(d) in ("done", "more", "error"))
        got = [g["label"] for g in load_all(ja)]
        want, _ = brute_force(library, model, "花", **api)
        assert got == want, ui
        assert state(ja) == "done"
        if not want:
            assert status(ja)[0] == "条件に合う写真はありません。"
    shot(ja, "filters")
    # The folder box offers the folders seen; clearing the filters searches everything again.
    offered = ja.execute_script("return [...document.querySelectorAll('#folders option')].map(o => o.value)")
    assert {"a", "b", "a/deep"} <= set(offered)
    ja.find_element(By.ID, "clear-filters").click()
    wait_for(ja, lambda d: state(d) in ("done", "more"))
    assert len(load_all(ja)) == 60


# ---- errors ----

def test_errors_are_sentences_in_the_users_language_with_the_detail_kept(ja, server, tmp_path):
    open_page(ja, server)
    search_text(ja, "猫")
    set_filters(ja, after="2024-05-09", until="2024-05-02")  # an empty range: the server says 400
    wait_for(ja, lambda d: state(d) == "error")
    sentence, detail, is_error = status(ja)
    assert is_error and sentence == "検索の条件が正しくありません。日付やフォルダを確かめてください。"
    assert "JACLIP_ERROR_INVALID_ARGUMENT" in detail and "HTTP 400" in detail
    assert "JACLIP_" not in sentence
    shot(ja, "error-invalid")
    set_filters(ja)
    # A file that is not an image, chosen as the query image.
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a JPEG " * 20)
    from selenium.webdriver.common.by import By
    ja.find_element(By.ID, "file").send_keys(str(bad))
    wait_for(ja, lambda d: state(d) == "error")
    sentence, detail, _ = status(ja)
    assert sentence.startswith("この画像は読み込めません") and "JACLIP_ERROR_IMAGE_DECODE" in detail
    # The server gone.
    gone = Server("--index", f"lib={server_index(server)}")
    open_page(ja, gone)
    assert gone.stop() == 0
    search_text(ja, "猫")
    wait_for(ja, lambda d: state(d) == "error")
    sentence, detail, _ = status(ja)
    assert sentence == "サーバーに接続できません。jaclip serve が動いているか確かめてください。" and detail


def server_index(server):
    return server.proc.args[server.proc.args.index("--index") + 1].split("=", 1)[1]


# ---- a phone ----

def test_a_390px_phone_screen_has_no_horizontal_scroll(server, library):
    from selenium.webdriver.common.by import By
    phone = chrome("ja-JP,ja", 390, 844)
    try:
        phone.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                              {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
        open_page(phone, server)
        assert phone.execute_script("return window.innerWidth") == 390

        def fits(name):
            width = phone.execute_script("return document.documentElement.scrollWidth")
            assert width <= 390, (name, width)
            # The controls stay on the screen and wide enough to use.
            for id_ in ("query", "go", "tab-search", "tab-dupes"):
                r = phone.execute_script("const r = document.getElementById(arguments[0]).getBoundingClientRect();"
                                         "return [r.left, r.right, r.width, r.height]", id_)
                if r[2]:
                    assert 0 <= r[0] and r[1] <= 390 and r[3] >= 24, (name, id_, r)
            shot(phone, f"phone-{name}")

        fits("empty")
        phone.find_element(By.ID, "query").send_keys("海辺の夕日")
        phone.find_element(By.ID, "go").click()  # a tap on the button, not Enter
        wait_for(phone, lambda d: state(d) == "more")
        cards = results(phone)
        assert len(cards) >= 24 and any(c["name"].startswith("<img") for c in load_all(phone))
        phone.execute_script("window.scrollTo(0, 0)")
        fits("results")
        widths = phone.execute_script("return [...document.querySelectorAll('#results figure')].slice(0, 4)"
                                      ".map(f => Math.round(f.getBoundingClientRect().width))")
        assert all(w >= 120 for w in widths), widths  # two columns, not slivers
        phone.find_element(By.CSS_SELECTOR, "#filters summary").click()
        fits("filters")
        set_filters(phone, after="2024-05-09", until="2024-05-02")
        wait_for(phone, lambda d: state(d) == "error")
        phone.find_element(By.CSS_SELECTOR, "#status summary").click()  # the detail, opened
        fits("error")
        phone.find_element(By.ID, "tab-dupes").click()
        wait_for(phone, lambda d: state(d, "groups") in ("more", "done"))
        fits("duplicates")
    finally:
        phone.quit()
