"""The `s2s-serve` application: the Sound2Synth plug-in protocol, a JSON API and a web page.

Routes:
- `POST /`: the Sound2Synth Dexed plug-in's request, the sound under the form field
  "Upload File" -> the flat {Dexed parameter name: value in [0, 1]} object it applies;
- `POST /match`: the sound under "file" -> its summary entry (`export.summary_entry`, the
  schema of s2s-match's summary.json), the parameters and links to the match's files;
- `GET /results/<id>/<file>`: those files (the input as received, .syx, _bank.syx, .json,
  .wav, .png), and `<slot>.wav` for slot 1..32 of the bank, rendered when asked;
- `GET /ping`: health; `GET /`: the web page (upload or record a sound, listen, download).

Errors are JSON {"error": message}: 400 no sound file or a malformed form, 408 a body that did
not arrive in time, 413 too large, 422 not a matchable sound, 503 busy (with Retry-After), 404,
405, 500. Every body must arrive within `body_seconds`. One worker thread matches one sound at a
time; at most `max_pending` requests whose body has arrived wait or run, the others are turned
away at once (so clients that stall while uploading hold no slot).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import http
import math
import pathlib
import re
import secrets
import shutil
import tempfile
import time
from concurrent import futures

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from s2s_jax.match import export
from s2s_jax.match import target as target_lib
from s2s_jax.match.matcher import Match, Matcher
from s2s_jax.synth import host
from s2s_jax.synth import sysex
from s2s_jax.util import files

SLOT_WAV = "slot{}.wav"  # a bank voice's rendering, made when first asked for
PLUGIN_FIELD = "Upload File"  # the Sound2Synth plug-in's form field
API_FIELDS = ("file", PLUGIN_FIELD)
STATIC = pathlib.Path(__file__).parent / "static"
MEDIA_TYPES = {".syx": "application/octet-stream", ".json": "application/json",
               ".wav": "audio/wav", ".png": "image/png", ".flac": "audio/flac",
               ".ogg": "audio/ogg", ".mp3": "audio/mpeg", ".aif": "audio/aiff",
               ".aiff": "audio/aiff"}


class Results:
  """The files of the latest `keep` matches, one folder each under `root`."""

  def __init__(self, root: str | pathlib.Path | None, keep: int):
    self.owned = root is None
    self.root = pathlib.Path(tempfile.mkdtemp(prefix="s2s-serve-") if root is None else root)
    self.root.mkdir(parents=True, exist_ok=True)
    self.keep = keep
    self._files: collections.OrderedDict[str, dict[str, pathlib.Path]] = (
        collections.OrderedDict())

  @contextlib.contextmanager
  def new(self):
    """Yields (id, folder) for one match; the folder is removed if the match fails."""
    result_id = secrets.token_hex(16)
    folder = self.root / result_id
    folder.mkdir()
    try:
      yield result_id, folder
    except BaseException:
      shutil.rmtree(folder, ignore_errors=True)
      raise

  def add(self, result_id: str, paths: dict[str, pathlib.Path]) -> None:
    """Publishes a match's files, forgetting and deleting the oldest beyond `keep`."""
    self._files[result_id] = {path.name: path for path in paths.values()}
    while len(self._files) > self.keep:
      old, _ = self._files.popitem(last=False)
      shutil.rmtree(self.root / old, ignore_errors=True)

  def get(self, result_id: str, filename: str) -> pathlib.Path | None:
    return self._files.get(result_id, {}).get(filename)

  def bank(self, result_id: str) -> pathlib.Path | None:
    """The match's NAME_bank.syx, if the match is kept."""
    return next((path for name, path in self._files.get(result_id, {}).items()
                 if name.endswith(export.OUTPUTS["bank"])), None)

  def close(self) -> None:
    if self.owned:
      shutil.rmtree(self.root, ignore_errors=True)


class Service:
  """The matcher behind the routes: upload limits, the pending count, the worker thread."""

  def __init__(self, matcher: Matcher, results: Results, max_upload_bytes: int,
               max_pending: int, body_seconds: float):
    self.matcher = matcher
    self.results = results
    self.max_upload_bytes = max_upload_bytes
    self.max_pending = max_pending
    self.body_seconds = body_seconds
    self.pending = 0
    self.retry_after = 10  # seconds: then the last request's time on the worker
    self.expected_seconds = None  # the last match's time, for the page's progress bar
    self._worker = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2s-match")

  async def plugin(self, request: Request) -> JSONResponse:
    """`POST /`: the plug-in's upload -> {Dexed parameter name: value in [0, 1]}."""
    async with self._upload(request, (PLUGIN_FIELD,)) as sound:
      with tempfile.TemporaryDirectory(dir=self.results.root, prefix=".upload-") as folder:
        match, _, _ = await self._run(self._match, sound, pathlib.Path(folder))
    return JSONResponse(host.to_dexed_json(match.voice))

  async def match(self, request: Request) -> JSONResponse:
    """`POST /match`: the upload -> the summary entry, parameters and links to the files."""
    async with self._upload(request, API_FIELDS) as sound:
      with self.results.new() as (result_id, folder):
        match, target, written = await self._run(self._match_and_export, sound, folder)
        self.results.add(result_id, written.paths)
    self.expected_seconds = match.seconds
    entry = export.summary_entry(match, target, sound.filename or "upload", written)
    del entry["outputs"]["input"]
    for alternative in entry["alternatives"]:
      alternative["link"] = f"/results/{result_id}/{SLOT_WAV.format(alternative['slot'])}"
    return JSONResponse({
        "id": result_id, **entry, "parameters": host.to_dexed_json(match.voice),
        "links": {kind: f"/results/{result_id}/{path.name}"
                  for kind, path in written.paths.items()}})

  async def result_file(self, request: Request) -> FileResponse:
    """`GET /results/<id>/<file>`: one file of a recent match."""
    result_id, filename = request.path_params["result_id"], request.path_params["filename"]
    path = self.results.get(result_id, filename)
    slot = re.fullmatch(SLOT_WAV.format(r"([1-9][0-9]?)"), filename)
    bank = self.results.bank(result_id)
    if path is None and slot and bank and int(slot[1]) <= export.RANKED:
      path = await asyncio.get_running_loop().run_in_executor(
          self._worker, self._render_slot, bank, int(slot[1]))
    if path is None:
      raise HTTPException(404, f"no such result file: {request.url.path} (only the latest "
                               f"{self.results.keep} matches are kept)")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower(),
                                                         "application/octet-stream"),
                        filename=path.name if path.suffix == ".syx" else None)

  async def ping(self, request: Request) -> JSONResponse:
    """`GET /ping`: the server's health, models and limits."""
    del request
    return JSONResponse({
        "status": "ok", "models": [str(m.workdir) for m in (
            self.matcher.predictor.models if self.matcher.predictor else ())],
        "library_voices": len(self.matcher.library) if self.matcher.library else 0,
        "algorithms": list(self.matcher.settings.algorithms), "pending": self.pending,
        "expected_seconds": self.expected_seconds,
        "max_pending": self.max_pending, "max_upload_bytes": self.max_upload_bytes})

  async def page(self, request: Request) -> FileResponse:
    """`GET /`: the web page."""
    del request
    return FileResponse(STATIC / "index.html", media_type="text/html")

  def close(self) -> None:
    self._worker.shutdown(cancel_futures=True)
    self.results.close()

  @contextlib.asynccontextmanager
  async def _upload(self, request: Request, fields: tuple[str, ...]):
    """Yields the request's sound file, holding a pending slot; 400 / 408 / 413 / 503 otherwise.

    The slot is taken only once the whole body has arrived.
    """
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > self.max_upload_bytes:
      raise self._too_large()
    try:
      form = await Request(request.scope, self._limited(request.receive)).form()
    except ValueError as e:  # python-multipart's parse errors
      raise HTTPException(400, f"malformed multipart/form-data body: {e}") from None
    try:
      sound = _sound_file(form, fields)
      if self.pending >= self.max_pending:
        raise HTTPException(503, f"busy: {self.pending} sound(s) being matched or waiting; "
                                 f"retry in {self.retry_after} s",
                            {"Retry-After": str(self.retry_after)})
      self.pending += 1
      try:
        yield sound
      finally:
        self.pending -= 1
    finally:
      await form.close()

  def _limited(self, receive):
    """`receive` failing with 413 once the body exceeds the limit (chunked uploads), and with
    408 once `body_seconds` have passed (stalled clients, bodies shorter than announced)."""
    received = 0
    deadline = time.monotonic() + self.body_seconds

    async def limited_receive():
      nonlocal received
      try:
        message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
      except asyncio.TimeoutError:
        raise HTTPException(408, f"the request body did not arrive within {self.body_seconds:g} "
                                 "s") from None
      received += len(message.get("body", b""))
      if received > self.max_upload_bytes:
        raise self._too_large()
      return message
    return limited_receive

  def _too_large(self) -> HTTPException:
    return HTTPException(413, f"upload too large: the limit is {self.max_upload_bytes} bytes")

  async def _run(self, function, *args):
    """`function(*args)` on the worker thread; the time it takes sets Retry-After."""
    def timed():
      started = time.perf_counter()
      try:
        return function(*args)
      finally:
        self.retry_after = max(1, math.ceil(time.perf_counter() - started))
    return await asyncio.get_running_loop().run_in_executor(self._worker, timed)

  def _render_slot(self, bank: pathlib.Path, slot: int) -> pathlib.Path:
    """Voice `slot` (1-based) of a match's bank as a WAV beside it (rendered once)."""
    path = bank.with_name(SLOT_WAV.format(slot))
    if not path.exists():
      audio = self.matcher.renderer.render(sysex.read(bank)[slot - 1])
      files.write_atomic(path, export.wav_bytes(audio, self.matcher.renderer.settings.sample_rate,
                                                self.matcher.renderer.settings.sample_rate)[0])
    return path

  def _match(self, sound: UploadFile, folder: pathlib.Path
             ) -> tuple[Match, target_lib.Target, dict[str, pathlib.Path]]:
    """Saves the upload into `folder` and matches it -> (match, target, {"input": path})."""
    name = _safe_name(sound.filename)
    path = folder / f"{name}.input{_safe_suffix(sound.filename)}"
    with path.open("wb") as file:
      shutil.copyfileobj(sound.file, file)
    try:
      target = target_lib.load_target(path, self.matcher.renderer.settings, name=name,
                                      source=sound.filename or "upload")
    except target_lib.TargetError as e:
      raise HTTPException(422, str(e)) from None
    return self.matcher.match(target), target, {"input": path}

  def _match_and_export(self, sound: UploadFile, folder: pathlib.Path
                        ) -> tuple[Match, target_lib.Target, dict[str, pathlib.Path]]:
    """`_match`, then the match's files written beside the input -> (match, target, the
    files written, the input's path among them)."""
    match, target, paths = self._match(sound, folder)
    written = export.write_outputs(folder, match, target, self.matcher.renderer, paths["input"])
    return match, target, dataclasses.replace(written, paths={**paths, **written.paths})


def create_app(matcher: Matcher, *, max_upload_bytes: int = 20 * 2**20, max_pending: int = 4,
               results_dir: str | pathlib.Path | None = None, keep_results: int = 64,
               body_seconds: float = 60.0) -> Starlette:
  """The application serving `matcher`.

  Args:
    matcher: the loaded models; it matches one sound at a time on a worker thread.
    max_upload_bytes: larger request bodies are refused (413).
    max_pending: requests that may wait or run at once; more are refused (503).
    results_dir: where /match writes its files; default a temporary folder removed at shutdown.
    keep_results: how many matches' files are kept (the oldest are deleted).
    body_seconds: a request body must arrive within this time (408 otherwise).
  """
  if min(max_upload_bytes, max_pending, keep_results) < 1 or not body_seconds > 0:
    raise ValueError("max_upload_bytes, max_pending and keep_results must be >= 1, "
                     "body_seconds > 0")
  service = Service(matcher, Results(results_dir, keep_results),
                    max_upload_bytes, max_pending, body_seconds)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    del app
    try:
      yield
    finally:
      service.close()

  routes = [
      Route("/", service.page, methods=["GET"]),
      Route("/", service.plugin, methods=["POST"]),
      Route("/ping", service.ping, methods=["GET"]),
      Route("/match", service.match, methods=["POST"]),
      Route("/results/{result_id}/{filename}", service.result_file, methods=["GET"]),
      Mount("/static", _StaticFiles(directory=STATIC), name="static"),
  ]
  return Starlette(routes=routes, lifespan=lifespan, exception_handlers={
      HTTPException: _http_error, ClientDisconnect: _client_gone, Exception: _internal_error})


class _StaticFiles(StaticFiles):
  """StaticFiles answering 404, not 500, for paths the file system refuses (a null byte)."""

  async def get_response(self, path: str, scope) -> FileResponse:
    try:
      return await super().get_response(path, scope)
    except ValueError:
      raise HTTPException(404) from None


def _sound_file(form, fields: tuple[str, ...]) -> UploadFile:
  """The first of `fields` holding a file; 400 naming what the form holds otherwise."""
  for field in fields:
    if isinstance(form.get(field), UploadFile):
      return form[field]
  received = ", ".join(repr(k) for k in form) or "nothing"
  raise HTTPException(400, f"no sound file in the multipart/form-data field {fields[0]!r} "
                           f"(received: {received})")


def _safe_name(filename: str | None) -> str:
  """A file name's stem as [A-Za-z0-9_-], at most 32 characters; "upload" if none is left."""
  stem = pathlib.PurePath(filename or "").stem
  return re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:32].strip("_") or "upload"


def _safe_suffix(filename: str | None) -> str:
  """The file name's extension if it is short and alphanumeric (libsndfile may need it)."""
  suffix = pathlib.PurePath(filename or "").suffix
  return suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
  message = exc.detail
  if message == http.HTTPStatus(exc.status_code).phrase:  # the router's 404 / 405
    message = f"{message}: {request.method} {request.url.path}"
  return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)


async def _client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
  del request, exc
  return JSONResponse({"error": "the client went away during the upload"}, 400)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
  """500; Starlette re-raises `exc` afterwards, so the server logs its traceback."""
  del request
  return JSONResponse({"error": f"internal error ({type(exc).__name__}): see the server's log"},
                      500)
