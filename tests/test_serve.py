"""`s2s-serve` over real sockets: the plug-in protocol, the JSON API, limits and errors."""

import contextlib
import http.client
import io
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent import futures

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import requests
import soundfile
import uvicorn

from s2s_jax.serve import app as app_lib
from s2s_jax.serve import cli as serve_cli
from s2s_jax.synth import host
from s2s_jax.synth import params
from s2s_jax.synth import sysex
import in_process

READY = re.compile(r"s2s-serve: listening on (http://\S+) \(1 model\)")
FAST = ("--refine-renders", "16", "--top-k", "2")
TIMEOUT = 120  # seconds for any one request
BODY_SECONDS = 4  # the test server's deadline for a request body


@contextlib.contextmanager
def running_server(model, *options: str, timeout: float = 180):
  """Runs `s2s-serve` on a free port; yields its URL once /ping answers; always stops it."""
  with tempfile.TemporaryFile() as stderr, subprocess.Popen(
      [sys.executable, "-m", "s2s_jax.serve.cli", "--model", str(model), "--port", "0", *FAST,
       *options], stdout=subprocess.PIPE, stderr=stderr, text=True) as process:
    try:
      yield _wait_until_ready(process, stderr, time.monotonic() + timeout)
    finally:
      process.terminate()
      try:
        process.wait(timeout=30)
      except subprocess.TimeoutExpired:
        process.kill()


def _wait_until_ready(process: subprocess.Popen, stderr, deadline: float) -> str:
  """The URL of the ready line (the first line on stdout), once /ping answers there."""
  readable, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
  line = process.stdout.readline() if readable else ""
  ready = READY.match(line)
  if not ready:
    stderr.seek(0)
    pytest.fail(f"s2s-serve did not start: {line!r}\n{stderr.read().decode()[-3000:]}")
  while time.monotonic() < deadline:
    with contextlib.suppress(requests.ConnectionError):
      if requests.get(ready[1] + "/ping", timeout=10).ok:
        return ready[1]
    time.sleep(0.2)
  pytest.fail("s2s-serve printed its address but /ping never answered")


def wav_bytes(audio: np.ndarray, sample_rate: int = 48000) -> bytes:
  buffer = io.BytesIO()
  soundfile.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
  return buffer.getvalue()


def rendered_sound(renderer, voices) -> bytes:
  """The loudest of a few voices rendered by the real engine, as a 16-bit WAV file."""
  audio = max((renderer.render(v) for v in voices[:8]), key=lambda a: np.abs(a).max())
  return wav_bytes(0.9 * audio / np.abs(audio).max())


@pytest.fixture(scope="module")
def server(tiny_model):
  with running_server(tiny_model, "--max-upload-mb", "1", "--max-pending", "1",
                      "--body-timeout", str(BODY_SECONDS)) as url:
    yield url


@pytest.fixture(scope="module")
def sound(renderer, random_voices) -> bytes:
  return rendered_sound(renderer, random_voices)


@pytest.fixture(scope="module")
def matched(server, sound) -> dict:
  response = requests.post(server + "/match", files={"file": ("my sound.wav", sound)},
                           timeout=TIMEOUT)
  assert response.status_code == 200, response.text
  return response.json()


def _error(response: requests.Response, status: int) -> str:
  assert response.status_code == status, response.text
  assert response.headers["content-type"] == "application/json"
  return response.json()["error"]


def test_plugin_protocol_answers_flat_dexed_parameters(server, sound):
  response = requests.post(server + "/", files={"Upload File": ("take 1.wav", sound)},
                           timeout=TIMEOUT)
  assert response.status_code == 200, response.text
  assert response.headers["content-type"] == "application/json"
  values = response.json()
  assert set(values) == {p.name for p in params.DEXED_PARAMS} and "ALGORITHM" in values
  assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values.values())
  voice = host.from_dexed_json(values)
  assert voice.shape == (params.VOICE_BYTES,) and voice.dtype == np.uint8


def test_plugin_ping_upload_is_a_json_400(server):
  response = requests.post(server + "/", files={".test": ("test.txt", b"ping")}, timeout=TIMEOUT)
  assert "'Upload File'" in _error(response, 400) and "'.test'" in response.json()["error"]


def test_ping_names_the_models(server, tiny_model):
  body = requests.get(server + "/ping", timeout=TIMEOUT).json()
  assert body["status"] == "ok" and body["models"] == [str(tiny_model)]
  assert body["max_pending"] == 1 and body["max_upload_bytes"] == 2**20


def test_match_api_and_every_link(matched, server, sound):
  assert matched["name"] == "my_sound" and matched["input"] == "my sound.wav"
  assert matched["algorithm"] == 5 and 1 <= matched["candidates"]
  assert {"mfccd13", "mfccd30"} <= set(matched["network"])
  assert matched["refined"] is not None and "note" in matched["pitch"]
  assert set(matched["links"]) == {"input", "syx", "bank", "json", "wav", "png"}
  files = {kind: requests.get(server + link, timeout=TIMEOUT)
           for kind, link in matched["links"].items()}
  assert all(r.status_code == 200 for r in files.values())

  assert files["syx"].headers["content-type"] == "application/octet-stream"
  assert 'filename="my_sound.syx"' in files["syx"].headers["content-disposition"]
  voice = sysex.parse(files["syx"].content)[0]
  np.testing.assert_array_equal(voice, host.from_dexed_json(matched["parameters"], "my_sound"))
  assert files["json"].json()["host"] == matched["parameters"]
  assert files["wav"].headers["content-type"] == "audio/wav"
  audio, rate = soundfile.read(io.BytesIO(files["wav"].content))
  assert rate == 48000 and np.abs(audio).max() > 0
  assert files["png"].headers["content-type"] == "image/png"
  assert files["png"].content.startswith(b"\x89PNG")
  assert files["input"].content == sound


def test_results_reject_unknown_files_and_path_traversal(matched, server):
  result = matched["id"]
  paths = [f"/results/{result}/..%2F..%2F..%2Fetc%2Fpasswd", f"/results/{result}/..",
           "/results/../../etc/passwd", f"/results/{result}/other.syx",
           f"/results/{'0' * 32}/my_sound.syx", f"/results/{result}%2F..%2F/my_sound.syx"]
  parts = urllib.parse.urlsplit(server)
  for path in paths:  # sent as written: no client-side normalisation
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 404, path
    assert "error" in json.loads(response.read())
    connection.close()


def test_oversized_uploads_are_413(server):
  body = os.urandom(2**20 + 1000)
  assert "too large" in _error(requests.post(server + "/match", files={"file": ("a.wav", body)},
                                             timeout=TIMEOUT), 413)
  boundary = "s2s-test-boundary"
  form = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
          .encode() + body + f"\r\n--{boundary}--\r\n".encode())
  chunked = requests.post(server + "/match", data=iter([form[:500_000], form[500_000:]]),
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                          timeout=TIMEOUT)
  assert "Content-Length" not in chunked.request.headers
  assert "too large" in _error(chunked, 413)
  assert requests.get(server + "/ping", timeout=TIMEOUT).json()["pending"] == 0


@pytest.mark.parametrize("filename,data,message", [
    ("quiet.wav", wav_bytes(np.zeros(48000)), "quiet.wav: the sound is silent"),
    ("notes.txt", b"not a sound at all\n", "notes.txt: not a readable audio file"),
    ("click.wav", wav_bytes(np.r_[np.zeros(1000), np.ones(100)]), "click.wav: too short"),
])
def test_unmatchable_sounds_are_422(server, filename, data, message):
  error = _error(requests.post(server + "/match", files={"file": (filename, data)},
                               timeout=TIMEOUT), 422)
  assert error.startswith(message) and "s2s-serve-" not in error  # no server paths


def test_unknown_routes_404_and_wrong_methods_405(server):
  assert "GET /nope" in _error(requests.get(server + "/nope", timeout=TIMEOUT), 404)
  assert _error(requests.get(server + "/static/nope.js", timeout=TIMEOUT), 404)
  assert "GET /match" in _error(requests.get(server + "/match", timeout=TIMEOUT), 405)
  assert _error(requests.put(server + "/", timeout=TIMEOUT), 405)
  assert _error(requests.post(server + "/ping", timeout=TIMEOUT), 405)


def test_the_page_and_its_assets_are_served(server):
  page = requests.get(server + "/", timeout=TIMEOUT)
  assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
  for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
    assert requests.get(server + asset, timeout=TIMEOUT).status_code == 200, asset


def test_busy_server_answers_503_at_once(server, sound):
  barrier = threading.Barrier(4)

  def post(_):
    barrier.wait(timeout=30)
    return requests.post(server + "/match", files={"Upload File": ("s.wav", sound)},
                         timeout=TIMEOUT)
  with futures.ThreadPoolExecutor(4) as pool:
    responses = list(pool.map(post, range(4)))
  statuses = sorted(r.status_code for r in responses)
  assert set(statuses) == {200, 503} and statuses.count(200) >= 1, statuses
  for response in responses:
    if response.status_code == 503:
      assert "busy" in _error(response, 503) and int(response.headers["retry-after"]) >= 1
    else:
      assert "links" in response.json()
  ping = requests.get(server + "/ping", timeout=TIMEOUT).json()
  assert ping["status"] == "ok" and ping["pending"] == 0


def test_binds_loopback_by_default(server):
  assert server.startswith("http://127.0.0.1:")
  port = urllib.parse.urlsplit(server).port
  listening = [line.split()[1] for line in open("/proc/net/tcp").read().splitlines()[1:]
               if line.split()[3] == "0A"]  # state LISTEN
  assert f"0100007F:{port:04X}" in listening


def test_bad_options_and_models_exit_2_without_traceback(server, tmp_path, tiny_model):
  """Run in this process (see tests/in_process.py): the server above is s2s-serve's process."""
  port = str(urllib.parse.urlsplit(server).port)
  for args, message in [(["--model", str(tmp_path / "nope")], "no such folder"),
                        (["--model", str(tiny_model), "--port", port], "cannot listen"),
                        (["--model", str(tiny_model), "--max-pending", "0"], "must be >= 1")]:
    result = in_process.run(serve_cli.main, "--port", "0", *args)
    assert result.returncode == 2 and "s2s-serve: error:" in result.stderr, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


class _BrokenMatcher:
  """Reads sounds like a Matcher, then fails."""

  def __init__(self, renderer):
    self.renderer = renderer

  def match(self, target):
    raise RuntimeError(f"deliberately broken on {target.name}")


def test_unexpected_errors_are_a_json_500_and_the_server_goes_on(renderer, sound, caplog):
  sock = socket.create_server(("127.0.0.1", 0))
  server = uvicorn.Server(uvicorn.Config(app_lib.create_app(_BrokenMatcher(renderer)),
                                         log_config=None))  # logs reach caplog
  thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
  thread.start()
  try:
    for _ in range(100):
      if server.started:
        break
      time.sleep(0.05)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for _ in range(2):
      response = requests.post(url + "/", files={"Upload File": ("s.wav", sound)}, timeout=TIMEOUT)
      assert "RuntimeError" in _error(response, 500)
  finally:
    server.should_exit = True
    thread.join(timeout=30)
  logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
  assert len(logged) == 2 and "deliberately broken on s" in str(logged[0].exc_info[1])


def test_results_keep_only_the_latest(tmp_path):
  results = app_lib.Results(tmp_path, keep=2)
  ids = []
  for i in range(3):
    with results.new() as (result_id, folder):
      (folder / f"{i}.syx").write_bytes(b"x")
      results.add(result_id, {"syx": folder / f"{i}.syx"})
    ids.append(result_id)
  assert results.get(ids[0], "0.syx") is None and not (tmp_path / ids[0]).exists()
  assert results.get(ids[2], "2.syx") == tmp_path / ids[2] / "2.syx"
  with pytest.raises(RuntimeError), results.new() as (result_id, folder):
    raise RuntimeError("a failed match")
  assert not (tmp_path / result_id).exists()
  results.close()
  assert tmp_path.exists()  # not the server's own folder: left in place


def _raw(url: str, request: bytes, wait: float = TIMEOUT) -> tuple[int, dict | None]:
  """Sends `request` as bytes over one socket -> (status, JSON body or None) of the answer."""
  parts = urllib.parse.urlsplit(url)
  with socket.create_connection((parts.hostname, parts.port), timeout=wait) as sock:
    sock.sendall(request)
    answer = b""
    while chunk := sock.recv(65536):
      answer += chunk
  head, _, body = answer.partition(b"\r\n\r\n")
  is_json = b"content-type: application/json" in head.lower()
  return int(head.split()[1]), json.loads(body) if is_json else None


def _post(path: str, body: bytes, content_type: bytes, length: int | None = None) -> bytes:
  return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
          b"Content-Type: " + content_type + b"\r\nContent-Length: "
          + str(len(body) if length is None else length).encode() + b"\r\n\r\n" + body)


def _part(boundary: bytes, data: bytes = b"RIFF") -> bytes:
  return (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
          b'filename="a.wav"\r\n\r\n' + data + b"\r\n--" + boundary + b"--\r\n")


def test_stalled_uploads_hold_no_slot_and_time_out(server, sound):
  form = _part(b"b", sound)
  parts = urllib.parse.urlsplit(server)
  stalled = []
  for _ in range(4):  # more than max_pending (1): a header and part of the body, then silence
    sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT)
    sock.sendall(_post("/match", form[:200], b"multipart/form-data; boundary=b", len(form)))
    stalled.append(sock)
  started = time.monotonic()
  response = requests.post(server + "/match", files={"file": ("s.wav", sound)}, timeout=TIMEOUT)
  assert response.status_code == 200, response.text
  for sock in stalled:
    with sock:
      status = int(sock.recv(65536).split()[1])
    assert status == 408
  assert time.monotonic() - started < BODY_SECONDS + TIMEOUT
  assert requests.get(server + "/ping", timeout=TIMEOUT).json()["pending"] == 0


def test_a_body_shorter_than_its_length_times_out(server):
  started = time.monotonic()
  status, body = _raw(server, _post("/", b"--b\r\n", b"multipart/form-data; boundary=b", 1000))
  assert status == 408 and f"within {BODY_SECONDS} s" in body["error"]
  assert BODY_SECONDS - 0.5 < time.monotonic() - started < BODY_SECONDS + 30


@pytest.mark.parametrize("request_bytes, status, message", [
    (_post("/match", _part(b"other"), b"multipart/form-data; boundary=b"), 400,
     "malformed multipart/form-data body"),
    (_post("/match", b'--b\r\nContent-Disposition: form-data; name="file"\r\nX: y',
           b"multipart/form-data; boundary=b"), 400, "no sound file"),
    (_post("/match", _part(b"x" * 5000), b"multipart/form-data; boundary=" + b"x" * 5000), 400,
     "Boundary length 5000 exceeds maximum"),
    (_post("/", b"abc", b"multipart/form-data"), 400, "Missing boundary"),
    (b"GET /static/%00 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", 404, "Not Found"),
    (b"GET /results/%00/%00 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", 404,
     "no such result file"),
])
def test_malformed_requests_are_4xx_never_500(server, request_bytes, status, message):
  answer = _raw(server, request_bytes)
  assert answer[0] == status and message in answer[1]["error"], answer


_FORM_BYTES = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda name, filename, data: (
        b'--b\r\nContent-Disposition: form-data; name="' + name + b'"; filename="' + filename
        + b'"\r\n\r\n' + data + b"\r\n--b--\r\n"),
        st.sampled_from([b"file", b"Upload File", b"x", b""]), st.binary(max_size=20),
        st.binary(max_size=200)))


@hypothesis.settings(max_examples=60, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(path=st.sampled_from(["/", "/match"]), body=_FORM_BYTES,
                  content_type=st.sampled_from([b"multipart/form-data; boundary=b",
                                                b"multipart/form-data", b"text/plain",
                                                b"multipart/form-data; boundary=\"b\""]))
def test_fuzzed_uploads_get_a_json_answer_never_500(server, path, body, content_type):
  status, answer = _raw(server, _post(path, body, content_type))
  assert status in (400, 413, 422, 503) and answer["error"], (status, answer)


@hypothesis.settings(max_examples=60, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(path=st.text(st.characters(codec="utf-8"), max_size=40).map(
    lambda t: urllib.parse.quote(t, safe="/.")))
def test_fuzzed_paths_get_a_json_answer_never_500(server, path):
  for prefix in ("/static/", "/results/", "/"):
    status, answer = _raw(server, b"GET " + (prefix + path).encode() +
                          b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    assert status in (200, 404, 405) and (status == 200 or answer["error"]), (prefix + path)
