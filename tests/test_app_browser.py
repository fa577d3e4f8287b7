"""`hf-xclip app` in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium
opens the page, classifies a generated clip, finds the segments of a sequence and seeks the video by clicking one,
searches an index, and uploads a file that is not a video; what the page shows is checked against the library.
Screenshots go to a temporary folder, or into ``docs/`` with ``HF_XCLIP_SCREENSHOTS=docs`` (how the pictures of
``docs/app.md`` are made). Skipped, with the reason, when no browser, driver or selenium is installed."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("gradio")
selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from hf_xclip.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

DOCS = Path(__file__).resolve().parents[1] / "docs"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WAIT = 90  # seconds: a loaded 2-core runner


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isfile(name) else None)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    chromium = _find("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
    driver = _find("/usr/bin/chromedriver", "chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            f"no headless browser: chromium {chromium or 'not found'}, chromedriver {driver or 'not found'} "
            "(apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="hf-xclip-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,1400")
    options.binary_location = chromium
    try:
        session = webdriver.Chrome(service=Service(driver), options=options)
    except WebDriverException as err:
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"chromium did not start: {str(err).splitlines()[0]}")
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser, app_server):
    """The app of `app_server` (tests/conftest.py: embedded model, generated clips, an index of them) open in the
    browser."""
    if app_server["index"] is None:
        pytest.skip("the index extra (datasets, faiss) is not installed")
    browser.get(app_server["url"])
    _wait(browser, lambda b: b.find_elements(By.ID, "classify-run"), "the page to load")
    return {"browser": browser, "state": app_server["state"], "shots": _screenshot_dir(app_server["root"])}


def _screenshot_dir(root: Path) -> Path:
    return DOCS if os.environ.get("HF_XCLIP_SCREENSHOTS") == "docs" else root


def _wait(browser, condition, what: str, timeout: float = WAIT):
    try:
        return WebDriverWait(browser, timeout).until(condition)
    except TimeoutException:
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _screenshot(browser, path: Path) -> Path:
    """A small PNG of the window (half size, 256 colours)."""
    from PIL import Image

    raw = path.with_suffix(".raw.png")
    browser.save_screenshot(str(raw))
    with Image.open(raw) as image:
        image = image.convert("RGB")
        small = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
        small.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    raw.unlink()
    return path


def _open_tab(browser, name: str, ready: str) -> None:
    tab = next(t for t in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text.strip() == name)
    tab.click()
    _wait(browser, lambda b: b.find_element(By.ID, ready).is_displayed(), f"the {name} tab")


def _video_shows(browser, element_id: str) -> bool:
    return bool(
        browser.execute_script(
            f"const v = document.querySelector('#{element_id} video'); return v !== null && v.videoWidth > 0;"
        )
    )


def test_classify_in_the_browser(page):
    browser, state = page["browser"], page["state"]
    clip = state.clips[0]  # the clip the page offers first, with its labels
    expected = state.classifier(str(clip.path), candidate_labels=list(clip.choices))
    browser.find_element(By.ID, "classify-run").click()
    best = expected[0]["label"]
    scores = _wait(
        browser, lambda b: best in (text := b.find_element(By.ID, "classify-scores").text) and text, "the scores"
    )
    lines = [line.strip() for line in scores.splitlines() if line.strip()]
    assert expected[0]["label"] in lines[:3]  # the heading names the best label
    for item in expected:
        assert item["label"] in lines and f"{round(item['score'] * 100)}%" in lines
    _wait(browser, lambda b: _video_shows(b, "classify-video"), "the clip to play")
    _screenshot(browser, page["shots"] / "app_classify.png")


def test_timeline_in_the_browser_and_a_click_seeks(page, tmp_path):
    import json

    browser, state = page["browser"], page["state"]
    _open_tab(browser, "Timeline", "timeline-run")
    sequence = state.clips[-1]
    out = tmp_path / "cli.json"
    assert (
        main(
            [
                "timeline",
                str(sequence.path),
                "--labels",
                ", ".join(sequence.choices),
                "--window",
                "2",
                "--stride",
                "0.5",
                "--json",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    segments = json.loads(out.read_text())["segments"]
    browser.find_element(By.ID, "timeline-run").click()
    first = '#timeline-segments [data-testid="cell-0-0"]'
    _wait(
        browser,
        lambda b: b.find_elements(By.CSS_SELECTOR, first) and b.find_element(By.CSS_SELECTOR, first).text,
        "the segments",
    )
    shown = [
        browser.find_element(By.CSS_SELECTOR, f'#timeline-segments [data-testid="cell-{row}-0"]').text
        for row in range(len(segments))
    ]
    assert shown == [segment["label"] for segment in segments]
    _wait(browser, lambda b: _video_shows(b, "timeline-video"), "the video")
    target = segments[2]
    browser.find_element(By.CSS_SELECTOR, '#timeline-segments [data-testid="cell-2-0"]').click()
    position = "return document.querySelector('#timeline-video video').currentTime"
    _wait(browser, lambda b: b.execute_script(position) >= target["start"], "the click to seek the video", 30)
    assert target["start"] <= browser.execute_script(position) <= target["start"] + 5
    _screenshot(browser, page["shots"] / "app_timeline.png")


def test_search_in_the_browser(page):
    browser, state = page["browser"], page["state"]
    _open_tab(browser, "Search", "search-run")
    query = state.clips[2].labels[0]
    expected = state.index(None).search(query, 8)
    box = browser.find_element(By.CSS_SELECTOR, "#search-query textarea, #search-query input")
    box.clear()
    box.send_keys(query)
    browser.find_element(By.ID, "search-run").click()
    _wait(
        browser,
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#search-gallery img")) >= len(expected),
        "the thumbnails",
    )
    captions = [
        c.text for c in browser.find_elements(By.CSS_SELECTOR, "#search-gallery .caption-label")
    ] or browser.find_element(By.ID, "search-gallery").text.splitlines()
    assert captions[0].startswith("1.") and Path(expected[0]["video"]).stem in captions[0]
    assert f"{expected[0]['score']:.1f}" in captions[0]
    _wait(browser, lambda b: _video_shows(b, "search-video"), "the best window to play")
    _screenshot(browser, page["shots"] / "app_search.png")
    source = "return document.querySelector('#search-video video').currentSrc"
    first = browser.execute_script(source)
    browser.find_elements(By.CSS_SELECTOR, "#search-gallery img")[1].click()  # the second window plays instead
    _wait(browser, lambda b: (b.execute_script(source) or first) != first, "the clicked window to play", 30)
    _wait(browser, lambda b: _video_shows(b, "search-video"), "the clicked window to play")


def test_a_bad_upload_shows_a_message(page, tmp_path):
    browser = page["browser"]
    _open_tab(browser, "Classify", "classify-run")
    bad = tmp_path / "holiday.mp4"
    bad.write_text("this is not a video")
    browser.find_element(By.CSS_SELECTOR, "#classify-upload input[type=file]").send_keys(str(bad))
    _wait(
        browser,
        lambda b: (
            "holiday" in b.find_element(By.ID, "classify-upload").text
            or b.find_elements(By.CSS_SELECTOR, "#classify-upload video")
        ),
        "the upload",
    )
    browser.find_element(By.ID, "classify-run").click()
    toast = _wait(
        browser,
        lambda b: [
            t
            for t in b.find_elements(By.CSS_SELECTOR, ".toast-body, [data-testid='toast-body']")
            if "holiday.mp4" in t.text
        ],
        "the error message",
    )
    text = toast[0].text
    assert "Cannot decode video" in text and "Traceback" not in text
    _screenshot(browser, page["shots"] / "app_error.png")
