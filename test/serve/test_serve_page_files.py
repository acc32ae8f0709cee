"""The page's files and views in headless Chromium (issue 25): the link to each result's original file
(and GET /v1/original's rules), the duplicates view against the library's own grouping, a token-guarded
server, the favicon, the page's headers, and a file named like an HTML tag. Screenshots go to
build/serve-page/."""
import html.parser
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from conftest import CLI, TINY_MODEL, Server
from pagekit import HOSTILE, chrome, ja, library, results, search_text, server, shot, status, wait_for  # noqa: F401 (fixtures)
from test_serve_page_ui import load_all, open_page, state

TOKEN = "page-test-token-5f1c"


def fetch(url, headers=None):
    """(status, headers, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


# ---- the original photo ----

def test_each_result_links_to_its_original_file(ja, server, library):
    from selenium.webdriver.common.by import By
    open_page(ja, server)
    search_text(ja, "海")
    cards = load_all(ja)
    lib = library["lib"]
    for c in cards[:6] + [c for c in cards if c["name"] == HOSTILE]:
        code, headers, body = fetch(c["open"])
        assert code == 200 and body == (lib / c["label"]).read_bytes(), c["label"]
        assert headers["Content-Type"] == ("image/png" if c["label"].endswith(".png") else "image/jpeg")
        assert "sandbox" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"
    # A click opens it in a new tab, where the browser shows the image; the card's own click ("more like
    # this") is not triggered.
    first = cards[0]
    width = Image.open(lib / first["label"]).width
    tabs = ja.window_handles
    ja.execute_script("window.scrollTo(0, 0)")  # below the sticky header
    ja.find_element(By.CSS_SELECTOR, "#results figure.hit a.open").click()
    new = wait_for(ja, lambda d: [h for h in d.window_handles if h not in tabs])[0]
    main = ja.current_window_handle
    ja.switch_to.window(new)
    try:
        wait_for(ja, lambda d: d.execute_script("return document.images.length && document.images[0].naturalWidth")
                 == width)
    finally:
        ja.close()
        ja.switch_to.window(main)
    assert len(results(ja)) == 60 and "「海」" in status(ja)[0]


def index_of(tree, *extra):
    out = tree.parent / (tree.name + ".jaclip-index")
    p = subprocess.run([CLI, "index", "build", "--model", TINY_MODEL, str(tree), "-o", str(out), *extra],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return out


@pytest.mark.parametrize("recorded_root", [True, False])
def test_original_serves_only_regular_files_of_the_index_under_its_folder(tmp_path, photos, recorded_root):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    (tree / "in").mkdir(parents=True)
    outside.mkdir()
    for name in ("ok.jpg", "link.jpg", "text.jpg", "dir.jpg", "gone.jpg", "夏 の海(1);\"x\".jpg"):
        shutil.copyfile(photos["paths"][0], tree / "in" / name)
    shutil.copyfile(photos["paths"][2], outside / "secret.jpg")
    index = index_of(tree, *(["--root", str(tree)] if recorded_root else []))
    # After indexing: a link leading out of the folder, HTML bytes, a folder, a removed file.
    os.unlink(tree / "in" / "link.jpg")
    os.symlink(outside / "secret.jpg", tree / "in" / "link.jpg")
    (tree / "in" / "text.jpg").write_bytes(b"<html><script>alert(1)</script></html>")
    os.unlink(tree / "in" / "dir.jpg")
    (tree / "in" / "dir.jpg").mkdir()
    os.unlink(tree / "in" / "gone.jpg")
    s = Server("--index", f"t={index}")
    try:
        base = f"http://127.0.0.1:{s.port}/v1/original?index=t&label="
        prefix = "in/" if recorded_root else f"{tree}/in/"
        q = urllib.parse.quote
        code, headers, body = fetch(base + q(prefix + "ok.jpg"))
        assert code == 200 and body == (tree / "in" / "ok.jpg").read_bytes()
        assert headers["Content-Type"] == "image/jpeg" and headers["Content-Length"] == str(len(body))
        assert headers["Content-Disposition"] == "inline; filename*=UTF-8''ok.jpg"
        # Saved under its own name: RFC 5987's characters kept, every other byte percent-encoded.
        odd = '夏 の海(1);"x".jpg'
        code, headers, body = fetch(base + q(prefix + odd))
        value = headers["Content-Disposition"]
        assert code == 200 and value == "inline; filename*=UTF-8''" + q(odd, safe="!#$&+^`|")
        encoded = value.split("''", 1)[1]
        assert urllib.parse.unquote(encoded) == odd and all(c not in encoded for c in ' ;"()')
        code, headers, body = fetch(base + q(prefix + "text.jpg"))  # not an image: bytes to download
        assert code == 200 and headers["Content-Type"] == "application/octet-stream"
        assert "sandbox" in headers["Content-Security-Policy"]
        for name in ("link.jpg", "dir.jpg", "gone.jpg"):
            code, _, body = fetch(base + q(prefix + name))
            assert code == 404 and b"JACLIP_ERROR_NOT_FOUND" in body and b"secret" not in body, name
        for bad in (q(str(outside / "secret.jpg")), q(prefix + "../../outside/secret.jpg"), q(prefix + "OK.jpg")):
            assert fetch(base + bad)[0] == 404, bad  # a path that is no row's label
        origin = f"http://127.0.0.1:{s.port}/v1/original?index=t"
        assert fetch(origin + "&row=0&label=" + q(prefix + "ok.jpg"))[0] == 400
        assert fetch(origin + "&row=6")[0] == 400 and fetch(origin + "&row=-1")[0] == 400
        assert fetch(origin)[0] == 400 and fetch(origin + "&row=x")[0] == 400
        code, _, body = s.request("HEAD", f"/v1/original?index=t&label={q(prefix + 'ok.jpg')}")
        assert code == 200 and body == b""
        assert 'jaclip_requests_total{route="original",code="200"} 4' in s.request("GET", "/metrics")[2].decode()
    finally:
        assert s.stop() == 0


# ---- duplicates ----

def groups(driver):
    return driver.execute_script("""return [...document.querySelectorAll('#groups .group')].map(g => ({
        exact: g.dataset.exact === '1', labels: [...g.querySelectorAll('figure.hit')].map(f => f.dataset.label),
        loaded: [...g.querySelectorAll('img')].every(i => i.dataset.loaded === '1')}));""")


def test_the_duplicates_view_shows_the_librarys_groups_page_by_page(ja, server, library):
    from selenium.webdriver.common.by import By
    open_page(ja, server)
    dupes = 'jaclip_requests_total{route="duplicates",code="200"}'

    def asked():
        line = [x for x in server.request("GET", "/metrics")[2].decode().splitlines() if x.startswith(dupes + " ")]
        return int(line[0].split()[-1]) if line else 0

    ja.find_element(By.ID, "tab-dupes").click()
    wait_for(ja, lambda d: state(d, "groups") in ("more", "done"))
    load_all(ja, "groups")
    want = library["index"].duplicates(0.95)
    got = groups(ja)
    assert [(g["exact"], g["labels"]) for g in got] == [(g.exact, [h.label for h in g.hits]) for g in want.groups]
    assert len(got) == want.total and f"{want.total} 件" in status(ja, "dupes-status")[0]
    ja.execute_script("window.scrollTo(0, 0)")
    wait_for(ja, lambda d: groups(d)[0]["loaded"])
    shot(ja, "duplicates")
    # Identical files only: the 14 copies, one group each, over two pages of 12.
    before = asked()
    ja.find_element(By.ID, "dupes-exact").click()
    ja.find_element(By.ID, "dupes-go").click()
    wait_for(ja, lambda d: state(d, "groups") in ("more", "done"))
    assert len(groups(ja)) == 12 or asked() - before == 2
    got = load_all(ja, "groups") and groups(ja)
    assert asked() - before == 2
    want = library["index"].duplicates(0.95, exact_only=True)
    assert [(g["exact"], g["labels"]) for g in got] == [(g.exact, [h.label for h in g.hits]) for g in want.groups]
    assert sorted(tuple(sorted(g["labels"])) for g in got) == sorted(
        tuple(sorted(pair)) for pair in library["copies"].items())  # what the fixture copied
    # A threshold the API refuses is said in words (the box's own limits are the browser's).
    ja.execute_script("document.getElementById('dupes-threshold').value = '0.3';"
                      "document.getElementById('dupes-form').dispatchEvent(new Event('submit', {cancelable: true}))")
    wait_for(ja, lambda d: state(d, "groups") == "error")
    sentence, detail, _ = status(ja, "dupes-status")
    assert sentence.startswith("検索の条件が正しくありません") and "threshold" in detail
    ja.find_element(By.ID, "tab-search").click()


# ---- a server with a token ----

def test_a_token_server_asks_for_it_and_the_page_works_with_it(library):
    from selenium.webdriver.common.by import By
    s = Server("--index", f"lib={library['index_path']}", "--token", TOKEN)
    driver = chrome("en-US,en")
    try:
        open_url = f"http://127.0.0.1:{s.port}/"
        driver.get(open_url)
        wait_for(driver, lambda d: d.find_element(By.ID, "token").is_displayed())
        assert status(driver) == ["This server needs a token: type it in, then search.", "", True]
        driver.find_element(By.ID, "token").send_keys("wrong")
        search_text(driver, "sea")
        wait_for(driver, lambda d: "SERVE_UNAUTHORIZED" in status(d)[1])
        assert status(driver)[0] == "The token is missing or wrong."
        driver.find_element(By.ID, "token").clear()
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        search_text(driver, "sea")
        wait_for(driver, lambda d: state(d) == "more" and all(r["loaded"] for r in results(d)[:6]))
        assert not driver.find_element(By.ID, "token").is_displayed()
        first = results(driver)[0]
        assert fetch(first["open"])[0] == 401  # the link alone is not enough
        code, _, body = fetch(first["open"], {"Authorization": f"Bearer {TOKEN}"})
        assert code == 200 and body == (library["lib"] / first["label"]).read_bytes()
        # The click fetches it with the token and shows it in a new tab.
        tabs = driver.window_handles
        driver.find_element(By.CSS_SELECTOR, "#results a.open").click()
        new = wait_for(driver, lambda d: [h for h in d.window_handles if h not in tabs])[0]
        driver.switch_to.window(new)
        width = Image.open(library["lib"] / first["label"]).width
        wait_for(driver, lambda d: d.current_url.startswith("blob:") and d.execute_script(
            "return document.images.length && document.images[0].naturalWidth") == width)
        shot(driver, "token-original")
    finally:
        driver.quit()
        assert s.stop() == 0


# ---- favicon, headers, hostile names ----

class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_favicon_and_the_pages_headers(server):
    for path in ("/favicon.svg", "/favicon.ico"):
        code, headers, body = server.request("GET", path)
        assert code == 200 and headers["Content-Type"] == "image/svg+xml"
        assert ET.fromstring(body).tag == "{http://www.w3.org/2000/svg}svg"
    code, headers, body = server.request("GET", "/")
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy and "frame-ancestors 'none'" in policy
    tags = _Tags()
    tags.feed(body.decode())
    assert ("link", {"rel": "icon", "href": "/favicon.svg", "type": "image/svg+xml"}) in tags.tags
    # No inline script or handler: the policy would block it.
    assert all(a.get("src") for t, a in tags.tags if t == "script")
    assert not [a for _, attrs in tags.tags for a in attrs if a.startswith("on")]
    for name in ("app", "i18n", "api", "ui", "paging", "search", "dupes"):
        code, headers, js = server.request("GET", f"/{name}.js")
        assert code == 200 and headers["Content-Type"].startswith("text/javascript")
        assert len(js.decode().splitlines()) <= 600
        assert b"innerHTML" not in js and b"insertAdjacentHTML" not in js and b"eval(" not in js
    code, headers, _ = server.request("GET", "/v1/indexes")
    assert "sandbox" in headers["Content-Security-Policy"]


def test_a_file_named_like_html_is_shown_as_text(ja, server, library):
    open_page(ja, server)
    search_text(ja, "海")
    cards = load_all(ja)
    hostile = [c for c in cards if c["label"].endswith(HOSTILE)]
    assert len(hostile) == 1 and hostile[0]["name"] == HOSTILE and hostile[0]["label"] == "a/" + HOSTILE
    wait_for(ja, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#results figure.hit')].find(f => f.dataset.label === arguments[0])"
        ".querySelector('img').dataset.loaded === '1'", "a/" + HOSTILE) or ja.execute_script(
        "window.scrollTo(0, document.body.scrollHeight)"))
    assert ja.execute_script("return window.__xss") is None
    assert ja.execute_script("return document.querySelectorAll('#results img').length") == len(cards)
    assert ja.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
