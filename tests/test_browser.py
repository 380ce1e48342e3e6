"""The `s2s-serve` web page in headless Chromium: upload, record from a microphone, errors.

Uses Debian's chromium and chromedriver (apt: chromium chromium-driver); skipped without them,
except under CI (the environment variable CI set), where their absence fails.
"""

import os
import time

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from s2s_jax.synth import sysex
from test_serve import TIMEOUT, rendered_sound, running_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
MISSING = " or ".join(path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK))
if MISSING and not os.environ.get("CI"):
  pytest.skip(f"no {MISSING} (apt install chromium chromium-driver)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
  if MISSING:
    pytest.fail(f"CI runs the browser tests, but there is no {MISSING}", pytrace=False)
  options = Options()
  options.binary_location = CHROMIUM
  for flag in FLAGS:
    options.add_argument(flag)
  driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
  driver.set_page_load_timeout(60)
  driver.set_script_timeout(60)
  try:
    yield driver
  finally:
    driver.quit()


@pytest.fixture(scope="module")
def server(tiny_model):
  with running_server(tiny_model) as url:
    yield url


@pytest.fixture
def page(browser, server):
  browser.get(server + "/")
  return browser


def _submit_file(page, path):
  page.find_element(By.ID, "sound-file").send_keys(str(path))
  page.find_element(By.ID, "upload-button").click()


def _outcome(page) -> str:
  """Waits for the match or an error; returns "result" or "error"."""
  def shown(driver):
    for outcome in ("result", "error"):
      if driver.find_element(By.ID, outcome).is_displayed():
        return outcome
    return None
  return WebDriverWait(page, TIMEOUT).until(shown)


def _text(page, element_id: str) -> str:
  return page.find_element(By.ID, element_id).text


def _check_result(page, server):
  """Players loaded, spectrogram drawn, scores shown, the .syx link a valid sysex."""
  wait = WebDriverWait(page, 30)
  for player in ("input-audio", "match-audio"):
    wait.until(lambda d, p=player: d.execute_script(
        f"const a = document.getElementById('{p}'); return a.readyState >= 1 && !a.error"))
    assert page.execute_script(f"return document.getElementById('{player}').duration") > 0
  wait.until(lambda d: d.execute_script(
      "const i = document.getElementById('spectrogram'); return i.complete && i.naturalWidth"))
  assert "MFCCD-13" in _text(page, "scores") and "MFCCD-30" in _text(page, "scores")
  assert _text(page, "algorithm") == "5"
  href = page.find_element(By.ID, "syx-link").get_attribute("href")
  assert href.startswith(server + "/results/")
  syx = requests.get(href, timeout=TIMEOUT).content
  assert len(syx) == 163 and sysex.parse(syx).shape == (1, 155)


def test_page_offers_upload_and_recording(page):
  assert page.title.startswith("Sound2Synth")
  label = page.find_element(By.CSS_SELECTOR, "label[for=sound-file]")
  assert "Sound file" in label.text
  assert page.find_element(By.ID, "sound-file").get_attribute("type") == "file"
  assert page.find_element(By.ID, "upload-button").is_enabled()
  record = page.find_element(By.ID, "record-button")
  assert record.is_enabled() and record.text == "Start recording"
  assert not page.find_element(By.ID, "result").is_displayed()


def test_uploading_a_sound_shows_the_match(page, server, renderer, random_voices, tmp_path):
  path = tmp_path / "rendered.wav"
  path.write_bytes(rendered_sound(renderer, random_voices))
  _submit_file(page, path)
  assert _outcome(page) == "result", _text(page, "error")
  assert _text(page, "result-heading") == "Match for rendered"
  _check_result(page, server)
  page.set_window_size(1200, 1400)
  page.save_screenshot(str(tmp_path / "result.png"))


def test_recording_from_the_microphone_shows_the_match(page, server):
  record = page.find_element(By.ID, "record-button")
  record.click()
  WebDriverWait(page, 30).until(lambda d: record.text == "Stop and match")
  time.sleep(1.5)
  record.click()
  assert _outcome(page) == "result", _text(page, "error")
  assert _text(page, "result-heading") == "Match for recording"
  _check_result(page, server)


def test_server_errors_are_shown(page, tmp_path):
  path = tmp_path / "notes.txt"
  path.write_text("not a sound\n")
  _submit_file(page, path)
  assert _outcome(page) == "error"
  assert "notes.txt: not a readable audio file" in _text(page, "error")
  assert not page.find_element(By.ID, "result").is_displayed()
