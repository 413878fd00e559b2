"""Notebook 08's web page served by Voila on loopback, driven by a real headless Chromium (Debian's chromium and
chromedriver, through Selenium), in one visit: the page runs the upload form only; a face photo -> label and
explanation image; a non-image -> a readable error, and the page keeps working; a 20 MB photo (over tornado's
default 10 MiB websocket message) is predicted; a new explanation method runs the last photo again, and so does
choosing the same file again; a file over the app's limit gets a message; the visit writes nothing to the reports.
Skipped, with the reason, only when no browser is installed (``make test`` installs it with apt when it can)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nbhelpers.data.images import load_rgb
from nbhelpers.predict.upload_app import MAX_UPLOAD_MB
from nbhelpers.predict.web_page import WEBSOCKET_MAX_MESSAGE_MB, VoilaServer, page_notebook
from nbhelpers.predict.wide_photos import example_uploads
from nbhelpers.reporting.notebook_parameters import profile_parameters
from tests.conftest import NOTEBOOKS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
RESULTS = ".upload-results"
STATUS = ".upload-status"
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


def file_digests(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def page_reports(smoke_run, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The page's REPORTS_DIR (a copy of the smoke run's summary.json in a folder of its own) and its digests."""
    _, base = smoke_run
    reports = tmp_path_factory.mktemp("page_reports")
    if (base / "reports" / "summary.json").is_file():
        shutil.copy(base / "reports" / "summary.json", reports / "summary.json")
    return reports, file_digests(reports)


@pytest.fixture(scope="module")
def served_page(smoke_run, page_reports, tmp_path_factory):
    """Notebook 08's page (without its report-only cells) on the smoke run's checkpoints, served by Voila."""
    _, base = smoke_run
    parameters = {**profile_parameters("08_predict", "smoke"), "REPORTS_DIR": str(page_reports[0]),
                  "DATA_DIR": str(base / "data")}
    notebook = page_notebook(NOTEBOOKS / "08_predict.ipynb", parameters,
                             tmp_path_factory.mktemp("voila") / "08_predict.ipynb")
    with VoilaServer(notebook, startup_timeout=120) as server:
        yield server


@pytest.fixture(scope="module")
def page(browser, served_page):
    """The browser on the page, once its upload form is there (one visit for the whole module)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served_page.url)
    try:  # Voila runs the page's cells (the kernel imports torch) before the upload widget appears
        WebDriverWait(browser, 240).until(
            expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "button.widget-upload")))
    except Exception:
        pytest.fail(f"the upload widget never appeared; voila log: {served_page.log_tail()}")
    return browser


@pytest.fixture(scope="module")
def test_face(smoke_run) -> Image.Image:
    """A real UTKFace test face (the first of the smoke run's test split)."""
    _, base = smoke_run
    manifest = pd.read_csv(base / "data" / "manifests" / "utkface.csv")
    return load_rgb(manifest.loc[manifest["split"] == "test", "path"].iloc[0]).image


@pytest.fixture(scope="module")
def face_photo(smoke_run, test_face, tmp_path_factory) -> Path:
    """The test face framed wider (as a phone photo would be), as a JPEG file."""
    _, base = smoke_run
    manifest = pd.read_csv(base / "data" / "manifests" / "utkface.csv")
    path = manifest.loc[manifest["split"] == "test", "path"].iloc[0]
    (name, content), = example_uploads([path], 0.35, seed=1)
    photo = tmp_path_factory.mktemp("upload") / "portrait.jpg"
    photo.write_bytes(content)
    return photo


@pytest.fixture(scope="module")
def large_photo(test_face, tmp_path_factory) -> Path:
    """A ~20 MB PNG: the test face, 640 px wide, in the middle of 2700x2700 px of random noise (which PNG cannot
    compress), so the upload is twice tornado's default websocket message limit (10 MiB)."""
    canvas = Image.fromarray(np.random.default_rng(0).integers(0, 256, (2700, 2700, 3), dtype=np.uint8))
    canvas.paste(test_face.resize((640, 640)), (1030, 1030))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=1)
    photo = tmp_path_factory.mktemp("large") / "large_face.png"
    photo.write_bytes(buffer.getvalue())
    assert 20e6 < photo.stat().st_size < MAX_UPLOAD_MB * 1e6
    return photo


def upload(driver, path: Path) -> None:
    """Click the page's upload button, then choose ``path`` in the (stand-in) file chooser."""
    from selenium.webdriver.common.by import By

    driver.execute_script("document.querySelectorAll('input[data-chooser]').forEach(field => field.remove());")
    driver.find_element(By.CSS_SELECTOR, "button.widget-upload").click()
    field = driver.find_element(By.CSS_SELECTOR, "input[type=file][data-chooser=open]")
    driver.execute_script("arguments[0].style.display = 'block';", field)
    field.send_keys(str(path))


def text_of(driver, selector: str) -> str:
    return driver.execute_script(f"const e = document.querySelector('{selector}'); return e ? e.innerText : '';")


def wait_until(driver, server, condition, what: str, seconds: float = 180):
    """``condition(driver)``'s first true value within ``seconds``; a failure names ``what`` and shows Voila's log."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.5).until(condition)
    except Exception:
        pytest.fail(f"{what} never came; status {text_of(driver, STATUS)!r}; voila log: {server.log_tail()}")


def wait_for_results(driver, server, file_name: str, seconds: float = 180) -> str:
    """The text of the results area once it shows ``file_name`` and the status says done."""
    def done(page):
        text = text_of(page, RESULTS)
        return text if file_name in text and "done" in text_of(page, STATUS) else False

    return wait_until(driver, server, done, f"results for {file_name}", seconds)


def wait_for_explanation(driver, server, file_name: str, method: str) -> None:
    """Wait until the results show ``file_name`` with a ``method`` explanation and the status says so (the widgets
    update one by one in the browser, in no fixed order)."""
    def shown(page):
        return (file_name in text_of(page, RESULTS) and "done with" in text_of(page, STATUS)
                and f"explanation {method}" in text_of(page, STATUS) and page.execute_script(
                    f"return document.querySelector('{RESULTS} img.explanation[alt=\"{method} explanation\"]') !== null"))

    wait_until(driver, server, shown, f"the {method} explanation of {file_name}")


def test_the_page_runs_the_upload_form_only(page):
    source = page.page_source  # the report-only sections (evaluation, examples, synthetic check) are not on the page
    assert "widget-upload" in source and "Upload your own photos" in source
    assert "Real photos: accuracy of the whole path" not in source and "Synthetic check" not in source
    assert "python -m" not in source and ".venv/bin" not in source  # no command-line text on the page
    assert f"up to {MAX_UPLOAD_MB} MB each" in text_of(page, STATUS)


def test_voila_page_predicts_an_uploaded_face_and_survives_a_bad_file(page, served_page, face_photo, tmp_path):
    from selenium.webdriver.common.by import By

    upload(page, face_photo)
    text = wait_for_results(page, served_page, "portrait.jpg")
    assert ("female" in text or "male" in text)
    labels = page.find_elements(By.CSS_SELECTOR, f"{RESULTS} .label")
    assert labels and labels[0].text in {"female", "male", "uncertain"}
    if labels[0].text == "uncertain":  # below the run's threshold (smoke models are unsure): the leaning class is shown
        assert "leaning female" in text or "leaning male" in text
    assert page.find_elements(By.CSS_SELECTOR, f"{RESULTS} img.photo")  # the photo with its face box
    explanation = page.find_element(By.CSS_SELECTOR, f"{RESULTS} img.explanation")
    assert explanation.get_attribute("src").startswith("data:image/png;base64,")
    assert page.execute_script("return arguments[0].naturalWidth", explanation) > 0  # the image really decoded

    not_an_image = tmp_path / "holiday.jpg"
    not_an_image.write_text(json.dumps({"this": "is text, not a JPEG"}))
    upload(page, not_an_image)
    text = wait_for_results(page, served_page, "holiday.jpg")
    error = page.find_element(By.CSS_SELECTOR, f"{RESULTS} .error")
    assert "holiday.jpg" in error.text and "not an image" in error.text and "Traceback" not in text

    upload(page, face_photo)  # the page keeps working after the bad file
    text = wait_for_results(page, served_page, "portrait.jpg")
    assert "holiday.jpg" not in text and page.find_elements(By.CSS_SELECTOR, f"{RESULTS} img.explanation")


def test_a_20_mb_photo_is_predicted_and_a_new_method_or_the_same_file_runs_again(page, served_page, large_photo):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select

    start = time.monotonic()
    upload(page, large_photo)
    wait_for_explanation(page, served_page, "large_face.png", "gradcam")
    print(f"{large_photo.stat().st_size / 1e6:.1f} MB photo: results in {time.monotonic() - start:.1f} s")
    before = page.find_element(By.CSS_SELECTOR, f"{RESULTS} img.explanation")

    Select(page.find_element(By.XPATH, "//div[contains(@class, 'widget-dropdown')][.//label[text()='Explain']]"
                                       "//select")).select_by_visible_text("xgradcam")
    wait_for_explanation(page, served_page, "large_face.png", "xgradcam")  # the last photo, run again
    assert expected_conditions.staleness_of(before)(page)
    assert not page.find_elements(By.CSS_SELECTOR, f'{RESULTS} img.explanation[alt="gradcam explanation"]')

    again = page.find_element(By.CSS_SELECTOR, f"{RESULTS} img.explanation")
    upload(page, large_photo)  # the same file chosen again runs again, with the method now chosen
    wait_until(page, served_page, expected_conditions.staleness_of(again), "a new result for the same file")
    wait_for_explanation(page, served_page, "large_face.png", "xgradcam")


def test_a_file_over_the_limit_gets_a_message_and_the_page_keeps_working(page, served_page, face_photo, tmp_path):
    from selenium.webdriver.common.by import By

    too_large = tmp_path / "huge.jpg"  # over the app's limit, within the transport's: it reaches Python and is refused
    too_large.write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(1).bytes(int((MAX_UPLOAD_MB + 1.5) * 1e6)))
    assert too_large.stat().st_size < WEBSOCKET_MAX_MESSAGE_MB * 2 ** 20
    upload(page, too_large)
    wait_until(page, served_page, lambda driver: "huge.jpg" in text_of(driver, RESULTS) and text_of(driver, STATUS)
               .startswith("0 file(s) done with") and f"1 refused (over {MAX_UPLOAD_MB} MB)" in text_of(driver, STATUS),
               "the refusal")
    error = page.find_element(By.CSS_SELECTOR, f"{RESULTS} .error").text
    assert f"huge.jpg: 31.5 MB is over this page's limit of {MAX_UPLOAD_MB} MB per photo" in error
    upload(page, face_photo)
    assert "huge.jpg" not in wait_for_results(page, served_page, "portrait.jpg")


def test_a_visit_writes_nothing_to_the_reports(page, page_reports):
    reports, before = page_reports
    assert file_digests(reports) == before
