"""Notebook 08 served by Voila on loopback, driven by a real headless Chromium (Debian's chromium and
chromedriver, through Selenium): upload a face photo -> label and explanation image; upload a non-image
-> a readable error, and the page keeps working. Skipped, with the reason, only when no browser is installed
(``make test`` installs it with apt when it can)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nbhelpers.predict.web_page import VoilaServer, parameterized_copy
from nbhelpers.predict.wide_photos import example_uploads
from nbhelpers.reporting.notebook_parameters import profile_parameters
from tests.conftest import NOTEBOOKS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
RESULTS = ".upload-results"
# ipywidgets' FileUpload clicks a file <input> that is never attached to the page, which opens the native file
# chooser. In the test browser, that click attaches the input to the page instead (no chooser), so that
# WebDriver can set its files the way a user's choice in the chooser would.
FILE_CHOOSER_STAND_IN = """
const nativeClick = HTMLInputElement.prototype.click;
HTMLInputElement.prototype.click = function () {
  if (this.type !== "file") { return nativeClick.call(this); }
  this.value = "";
  if (!this.isConnected) { this.setAttribute("data-chooser", "open"); document.body.appendChild(this); }
};
"""
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="no chromium/chromedriver: install Debian's chromium and chromium-driver "
                                       "(make test does so with apt when run as root)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,2000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FILE_CHOOSER_STAND_IN})
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served_page(smoke_run, tmp_path_factory):
    """Notebook 08 with the smoke profile on the smoke run's checkpoints, served by Voila."""
    _, base = smoke_run
    parameters = {**profile_parameters("08_predict", "smoke"), "REPORTS_DIR": str(base / "reports"),
                  "DATA_DIR": str(base / "data")}
    notebook = parameterized_copy(NOTEBOOKS / "08_predict.ipynb", parameters,
                                  tmp_path_factory.mktemp("voila") / "08_predict.ipynb")
    with VoilaServer(notebook, startup_timeout=120) as server:
        yield server


@pytest.fixture(scope="module")
def face_photo(smoke_run, tmp_path_factory) -> Path:
    """A real UTKFace test face, framed wider (as a phone photo would be), as a JPEG file."""
    _, base = smoke_run
    manifest = pd.read_csv(base / "data" / "manifests" / "utkface.csv")
    path = manifest.loc[manifest["split"] == "test", "path"].iloc[0]
    (name, content), = example_uploads([path], 0.35, seed=1)
    photo = tmp_path_factory.mktemp("upload") / "portrait.jpg"
    photo.write_bytes(content)
    return photo


def upload(driver, path: Path) -> None:
    """Click the page's upload button, then choose ``path`` in the (stand-in) file chooser."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "button.widget-upload").click()
    field = driver.find_element(By.CSS_SELECTOR, "input[type=file][data-chooser=open]")
    driver.execute_script("arguments[0].style.display = 'block';", field)
    field.send_keys(str(path))


def wait_for_results(driver, server, file_name: str, seconds: float = 180) -> str:
    """The text of the results area once it shows ``file_name`` and the status says done."""
    from selenium.webdriver.support.ui import WebDriverWait

    def done(page):
        text = page.execute_script(f"const e = document.querySelector('{RESULTS}'); return e ? e.innerText : '';")
        status = page.execute_script("const e = document.querySelector('.upload-status'); return e ? e.innerText : ''")
        return text if file_name in text and "done" in status else False

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.5).until(done)
    except Exception:
        pytest.fail(f"no results on the page; voila log: {server.log_tail()}")


def test_voila_page_predicts_an_uploaded_face_and_survives_a_bad_file(browser, served_page, face_photo, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served_page.url)
    try:  # Voila runs the whole notebook (the kernel imports torch) before the upload widget appears
        WebDriverWait(browser, 240).until(
            expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "button.widget-upload")))
    except Exception:
        pytest.fail(f"the upload widget never appeared; voila log: {served_page.log_tail()}")
    source = browser.page_source  # the notebook's own outputs are on the page, the upload form first
    assert "Real photos: accuracy of the whole path" in source and "Synthetic check, not real photos" in source
    assert source.index("widget-upload") < source.index("Real photos: accuracy of the whole path")
    assert "python -m" not in source and ".venv/bin" not in source  # no command-line text on the page

    upload(browser, face_photo)
    text = wait_for_results(browser, served_page, "portrait.jpg")
    assert ("female" in text or "male" in text)
    labels = browser.find_elements(By.CSS_SELECTOR, f"{RESULTS} .label")
    assert labels and labels[0].text in {"female", "male", "uncertain"}
    if labels[0].text == "uncertain":  # below the run's threshold (smoke models are unsure): the leaning class is shown
        assert "leaning female" in text or "leaning male" in text
    assert browser.find_elements(By.CSS_SELECTOR, f"{RESULTS} img.photo")  # the photo with its face box
    explanation = browser.find_element(By.CSS_SELECTOR, f"{RESULTS} img.explanation")
    assert explanation.get_attribute("src").startswith("data:image/png;base64,")
    assert browser.execute_script("return arguments[0].naturalWidth", explanation) > 0  # the image really decoded

    not_an_image = tmp_path / "holiday.jpg"
    not_an_image.write_text(json.dumps({"this": "is text, not a JPEG"}))
    upload(browser, not_an_image)
    text = wait_for_results(browser, served_page, "holiday.jpg")
    error = browser.find_element(By.CSS_SELECTOR, f"{RESULTS} .error")
    assert "holiday.jpg" in error.text and "not an image" in error.text and "Traceback" not in text

    upload(browser, face_photo)  # the page keeps working after the bad file
    text = wait_for_results(browser, served_page, "portrait.jpg")
    assert "holiday.jpg" not in text and browser.find_elements(By.CSS_SELECTOR, f"{RESULTS} img.explanation")
