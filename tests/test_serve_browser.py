"""The web page in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium,
against the real server on a loopback port with serkit's default model and the example clips.

Screenshots of each page go to ``$SERKIT_SCREENSHOT_DIR`` (the README's ones: ``SERKIT_SCREENSHOT_DIR=docs``),
else to the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from serkit.inference.api import default_model_path
from serkit.models.bundle import ModelBundle
from test_serve_server import REPO, cli_server, new_token

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"),
]


def shrink_png(path: Path) -> None:
    """Screenshots for the docs: palette PNGs (a few tens of kB)."""
    from PIL import Image

    with Image.open(path) as img:
        img.convert("RGB").quantize(colors=256).save(path, optimize=True)


@pytest.fixture
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # the microphone: a fake device playing the joined example clips, permission granted without a prompt
    microphone = joined_examples(tmp_path_factory.mktemp("mic") / "microphone.wav")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,1500",
                "--no-first-run", "--disable-extensions", "--proxy-server=direct://", "--proxy-bypass-list=*",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def joined_examples(path: Path) -> Path:
    """The example clips one after another with pauses: a longer recording, as a session would be."""
    import numpy as np
    import soundfile as sf

    parts = []
    for name in ("ravdess-01-angry-strong.flac", "ravdess-01-sad-strong.flac", "emodb-03a01Fa-happy.wav",
                 "ravdess-02-fearful-strong.flac", "emodb-03a01Nc-neutral.wav", "ravdess-02-disgust-strong.flac"):
        y, sr = sf.read(REPO / "examples" / name, dtype="float32")
        assert sr == 16000
        parts += [y, np.zeros(12000, np.float32)]
    sf.write(path, np.concatenate(parts), 16000)
    return path


def test_page_upload_timeline_and_trend_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("SERKIT_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        browser.save_screenshot(str(shots / f"serve_{name}.png"))
        shrink_png(shots / f"serve_{name}.png")

    data = tmp_path / "data"
    token = new_token(data, "browser test")["Authorization"].split()[1]
    server = cli_server(data, None)
    wait = WebDriverWait(browser, 90)
    try:
        server.wait_ready(timeout=120)
        browser.get(f"http://127.0.0.1:{server.port}/")
        field = wait.until(EC.element_to_be_clickable((By.ID, "token")))
        shot("token")
        field.send_keys("sk-wrong" + Keys.ENTER)  # keyboard only: Enter submits
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "token"))
        field = browser.find_element(By.ID, "token")
        field.clear()
        field.send_keys(token + Keys.ENTER)

        def upload(clip: Path, date: str, new_person: str | None) -> None:
            wait.until(EC.presence_of_element_located((By.ID, "file")))
            if new_person:
                browser.find_element(By.ID, "person-name").send_keys(new_person)
            browser.execute_script("arguments[0].value = arguments[1]", browser.find_element(By.ID, "date"), date)
            browser.find_element(By.ID, "file").send_keys(str(clip))
            browser.find_element(By.ID, "analyse").click()
            wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#timeline rect.segment")))

        wait.until(EC.presence_of_element_located((By.ID, "file")))
        assert "Not a diagnosis" in browser.find_element(By.CSS_SELECTOR, ".notice").text
        shot("upload")
        upload(REPO / "examples" / "emodb-03a01Wa-angry.wav", "2026-03-02", "Participant 7")
        page = browser.find_element(By.ID, "main").text
        assert "emodb-03a01Wa-angry.wav" in page and "Not a diagnosis" in page
        card = ModelBundle.load(default_model_path()).info["model_card"]  # the model the page's server runs
        ua = next(a["value"] for a in card["accuracy"] if a["corpus"] == "all" and a["metric"].lower() == "ua")
        accuracy = browser.find_element(By.ID, "accuracy").text
        if card.get("headline"):  # the card's figures for a person recorded anywhere: corpora never heard, trends
            assert card["headline"][0] in accuracy and "never heard" in accuracy
        else:
            assert f"{100 * ua:.1f} %" in accuracy  # the card's measured UA
        # one session of this person: no baseline yet, and the page says why
        assert "No personal baseline for this session yet" in browser.find_element(By.ID, "adapted").text
        labels = {e.get_attribute("data-label") for e in browser.find_elements(By.CSS_SELECTOR, "#timeline rect.segment")}
        assert labels and labels <= set(ModelBundle.load(default_model_path()).labels)
        shares = browser.find_element(By.ID, "shares").text
        assert all(lab in shares for lab in ("angry", "sad", "happy")) and "%" in shares
        assert "uncertain" in page and "negative emotions" in page
        browser.find_element(By.ID, "open-report").click()
        frame = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "iframe.report")))
        browser.switch_to.frame(frame)
        assert "This is not a diagnosis" in browser.find_element(By.TAG_NAME, "body").text
        browser.switch_to.default_content()

        browser.get(f"http://127.0.0.1:{server.port}/#/")
        # the same person (pre-selected), a week later, a longer recording
        upload(joined_examples(tmp_path / "week2.wav"), "2026-03-09", None)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline rect.segment")) >= 2
        assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline circle.window")) >= 6  # a window per clip at least
        shot("session")

        # a third session recorded from the (fake) microphone, with the keyboard only
        browser.get(f"http://127.0.0.1:{server.port}/#/")
        record = wait.until(EC.element_to_be_clickable((By.ID, "record")))
        browser.execute_script("arguments[0].value = '2026-03-16'", browser.find_element(By.ID, "date"))
        record.send_keys(Keys.ENTER)
        wait.until(EC.text_to_be_present_in_element((By.ID, "record"), "Stop"))
        time.sleep(6)
        record.send_keys(Keys.ENTER)
        wait.until(EC.text_to_be_present_in_element((By.ID, "recorded"), "kB"))
        browser.find_element(By.ID, "analyse").send_keys(Keys.ENTER)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#timeline rect.segment")))
        assert "recording-2026-03-16.wav" in browser.find_element(By.ID, "main").text

        wait.until(EC.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Participant 7"))).click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#trend rect")))
        rows = browser.find_elements(By.CSS_SELECTOR, "#trend-table tr")
        assert [r.text[:10] for r in rows[1:]] == ["2026-03-02", "2026-03-09", "2026-03-16"]
        sessions = browser.find_element(By.ID, "sessions").text
        assert all(name in sessions for name in ("emodb-03a01Wa-angry.wav", "week2.wav", "recording-2026-03-16.wav"))
        assert "done" in sessions
        assert "Not a diagnosis" in browser.find_element(By.ID, "main").text
        # three short sessions are too little of this person's voice for a baseline: the page says so
        baseline = browser.find_element(By.ID, "baseline").text
        assert "No personal baseline yet" in baseline and "too small to trust" in baseline
        assert "No voice profile" in browser.find_element(By.ID, "voice").text  # and the way to enrol one
        assert browser.find_element(By.ID, "enrol-voice").is_enabled()
        assert "negative share (adapted)" in rows[0].text
        shot("person")

        browser.get(f"http://127.0.0.1:{server.port}/#/model")
        table = wait.until(EC.presence_of_element_located((By.ID, "accuracy-table")))
        assert "speaker_folds" in table.text and f"{ua:.3f}" in table.text
        shot("model")

        browser.set_window_size(390, 844)  # a phone: nothing wider than the screen
        browser.get(f"http://127.0.0.1:{server.port}/#/people")
        wait.until(EC.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Participant 7"))).click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#trend rect")))
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1
        shot("phone")
    finally:
        server.stop()
