"""The `s2s-serve` page in headless Chromium: drag and drop, progress, the bank and its players.

Shares test_browser.py's browser and server (the same skips: no chromium or chromedriver).
Set S2S_SCREENSHOTS=DIR to keep the screenshots.
"""

import base64
import os
import pathlib

import dexed
import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from s2s_jax.data import recipes
import test_browser
from test_browser import _outcome, _text
from test_serve import TIMEOUT, rendered_sound

browser, server, page = test_browser.browser, test_browser.server, test_browser.page  # fixtures

DROP = """
const [data, name] = arguments;
const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, { type: 'audio/wav' }));
const zone = document.querySelector('.drop-zone');
zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true }));
window.dragHighlighted = zone.classList.contains('dragging');
zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true }));
"""


def _screenshot(page, tmp_path, name: str) -> None:
  folder = pathlib.Path(os.environ.get("S2S_SCREENSHOTS", tmp_path))
  folder.mkdir(parents=True, exist_ok=True)
  page.save_screenshot(str(folder / name))


def test_a_dropped_file_is_matched_with_progress_then_the_bank_is_offered(
    page, server, renderer, random_voices, tmp_path):
  page.set_window_size(1200, 900)
  sound = rendered_sound(renderer, random_voices)
  page.execute_script(DROP, base64.b64encode(sound).decode(), "dropped.wav")
  assert page.execute_script("return window.dragHighlighted")

  elapsed = WebDriverWait(page, 30).until(
      lambda d: d.find_element(By.ID, "progress-box").is_displayed() and _text(d, "elapsed"))
  assert "s elapsed" in elapsed and _text(page, "status") == "Matching dropped.wav…"
  _screenshot(page, tmp_path, "matching.png")
  assert _outcome(page) == "result", _text(page, "error")
  assert not page.find_element(By.ID, "progress-box").is_displayed()
  assert _text(page, "result-heading") == "Match for dropped"
  assert _text(page, "status").startswith("Matched dropped.wav in ")

  body = requests.get(server + "/ping", timeout=TIMEOUT).json()
  assert body["expected_seconds"] > 0  # the next match's progress bar has a scale

  links = {kind: page.find_element(By.ID, f"{kind}-link") for kind in ("syx", "bank", "wav")}
  assert links["bank"].get_attribute("download") == "dropped_bank.syx"
  assert links["wav"].get_attribute("download") == "dropped.wav"
  bank = requests.get(links["bank"].get_attribute("href"), timeout=TIMEOUT)
  path = tmp_path / "bank.syx"
  path.write_bytes(bank.content)
  assert len(dexed.Patch.load_bank(str(path))) == 32

  rows = page.find_elements(By.CSS_SELECTOR, "#alternatives tbody tr")
  assert len(rows) >= 2
  first = rows[0].find_elements(By.TAG_NAME, "td")
  assert first[0].text == "1" and first[1].text == "dropped 01" and first[2].text == "5"
  scores = [float(r.find_elements(By.TAG_NAME, "td")[3].text) for r in rows]
  assert scores[1:] == sorted(scores[1:])
  player = rows[1].find_element(By.TAG_NAME, "audio")
  assert player.get_attribute("preload") == "none"
  page.execute_script("arguments[0].load()", player)  # fetches slot 2's rendering
  WebDriverWait(page, TIMEOUT).until(
      lambda d: d.execute_script("return arguments[0].readyState >= 1 && !arguments[0].error",
                                 player))
  # A whole rendering: the clip of the model the server runs (tiny's), at most a frame short.
  assert page.execute_script("return arguments[0].duration", player) == pytest.approx(
      recipes.recipe("tiny").clip.render_seconds, abs=0.05)

  page.set_window_size(1200, 2600)
  _screenshot(page, tmp_path, "result_with_bank.png")
