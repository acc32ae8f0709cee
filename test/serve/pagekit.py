"""What the page tests share: headless Chromium (Debian chromium + chromium-driver, driven by
python3-selenium) in a chosen language and window size, waits, the cards read from the DOM, and a photo
library indexed by `jaclip index build` (folders, file times, types, exact copies, a hostile name)."""
import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from conftest import CLI, ROOT, TINY_MODEL, Server

SHOTS = os.environ.get("JACLIP_SCREENSHOTS", os.path.join(ROOT, "build", "serve-page"))
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOSTILE = '<img src=x onerror="window.__xss=1">.jpg'


def chrome(languages="ja,en", width=1200, height=900):
    """A headless Chromium whose Accept-Language (and navigator.languages) is languages."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("python3-selenium is not installed (tools/setup-deps installs it)")
    if not os.path.exists(CHROMEDRIVER):
        pytest.skip("chromedriver is missing (Debian chromium-driver; tools/setup-deps installs it)")
    options = webdriver.ChromeOptions()
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--no-proxy-server", "--disable-extensions",
                 f"--lang={languages.split(',')[0]}"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": languages})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def wait_for(driver, predicate, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))


def results(driver, container="#results"):
    return driver.execute_script("""
        return [...document.querySelectorAll(arguments[0] + ' figure.hit')].map(f => ({
            label: f.dataset.label, row: +f.dataset.row,
            name: f.querySelector('.name').textContent,
            score: +f.querySelector('.score').textContent,
            open: f.querySelector('a.open').href,
            loaded: f.querySelector('img').dataset.loaded === '1' && f.querySelector('img').complete,
            width: f.querySelector('img').naturalWidth}));""", container)


def status(driver, element="status"):
    """(sentence, details, is_error) of a status line."""
    return driver.execute_script("""
        const el = document.getElementById(arguments[0]);
        const code = el.querySelector('details code');
        return [el.querySelector('.message') ? el.querySelector('.message').textContent : el.textContent,
                code ? code.textContent : '', el.classList.contains('error')];""", element)


def shot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name + ".png")
    driver.save_screenshot(path)
    assert os.path.getsize(path) > 1000
    return path


def search_text(driver, text):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    box = driver.find_element(By.ID, "query")
    box.clear()
    box.send_keys(text, Keys.ENTER)


DAY = 86400
COPIES = 14  # exact copies: the duplicates view needs more groups than one page (12)


@pytest.fixture(scope="module")
def library(tmp_path_factory, model):
    """60 photos under lib/ (folders a, b, a/deep; copies/ holds exact copies of 14 of them), file times
    over ten days, JPEG and PNG, one named like an HTML tag; indexed with --root lib (labels relative)."""
    tmp = tmp_path_factory.mktemp("page")
    lib = tmp / "lib"
    base = int(time.mktime((2024, 5, 1, 12, 0, 0, 0, 0, -1)))  # local noon, as the server reads dates
    rng = np.random.default_rng(25)
    mtimes = {}
    distinct = 60 - COPIES
    for i in range(distinct):
        folder = ["a", "b", "a/deep"][i % 3]
        name = HOSTILE if i == 0 else f"p{i:02d}.{'png' if i % 4 == 1 else 'jpg'}"
        (lib / folder).mkdir(parents=True, exist_ok=True)
        h, w = 40 + i % 7, 48 + i % 5
        pixels = np.clip(rng.integers(0, 256, 3) + rng.normal(0, 10 + i, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(lib / folder / name, format="PNG" if name.endswith("png") else "JPEG",
                                     quality=90)
        mtimes[f"{folder}/{name}"] = base + (i % 10) * DAY
    (lib / "copies").mkdir()
    originals = sorted(mtimes)[1:1 + COPIES]
    for j, label in enumerate(originals):
        shutil.copyfile(lib / label, lib / "copies" / f"c{j:02d}{os.path.splitext(label)[1]}")
        mtimes[f"copies/c{j:02d}{os.path.splitext(label)[1]}"] = base + 9 * DAY
    for label, t in mtimes.items():
        os.utime(lib / label, (t, t))
    index_path = tmp / "lib.jaclip-index"
    p = subprocess.run([CLI, "index", "build", "--model", TINY_MODEL, str(lib), "--root", str(lib),
                        "-o", str(index_path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    import jaclip
    index = jaclip.Index.load(str(index_path))
    assert sorted(index.labels()) == sorted(mtimes)
    return {"lib": lib, "index": index, "index_path": str(index_path), "mtimes": mtimes, "base": base,
            "copies": {f"copies/c{j:02d}{os.path.splitext(label)[1]}": label for j, label in enumerate(originals)}}


@pytest.fixture(scope="module")
def server(library):
    """A server of the library, two model slots."""
    s = Server("--index", f"lib={library['index_path']}", "--threads", "2")
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def ja():
    """A browser that prefers Japanese."""
    driver = chrome("ja-JP,ja,en")
    yield driver
    driver.quit()
