// The s2s-serve page: upload or record a sound, POST it to /match, show the match.
'use strict';

const MAX_RECORD_SECONDS = 10;
const $ = (id) => document.getElementById(id);

function setStatus(text) {
  $('status').textContent = text;
}

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = !text;
}

function setBusy(busy) {
  $('upload-button').disabled = busy;
  $('record-button').disabled = busy && !recording;
}

let expectedSeconds = null;  // the server's last match time: the progress bar's scale

// While a match runs: a progress bar (scaled by the last match's time, else indeterminate)
// and the elapsed time. Returns a function that stops it.
function startProgress() {
  const started = performance.now();
  const bar = $('progress');
  $('progress-box').hidden = false;
  const tick = () => {
    const seconds = (performance.now() - started) / 1000;
    let text = `${seconds.toFixed(0)} s elapsed`;
    if (expectedSeconds) {
      bar.value = Math.min(0.95, seconds / expectedSeconds);
      const left = Math.max(0, expectedSeconds - seconds);
      text += left > 0 ? `, about ${left.toFixed(0)} s left` : ', almost done';
    } else {
      bar.removeAttribute('value');  // indeterminate
    }
    $('elapsed').textContent = text;
  };
  tick();
  const timer = setInterval(tick, 250);
  return () => {
    clearInterval(timer);
    $('progress-box').hidden = true;
    return (performance.now() - started) / 1000;
  };
}

// Sends a sound to the server and shows the match or the server's error message.
async function match(file, filename) {
  const form = new FormData();
  form.append('file', file, filename);
  showError('');
  setStatus(`Matching ${filename}…`);
  setBusy(true);
  const stop = startProgress();
  try {
    const response = await fetch('/match', { method: 'POST', body: form });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(body.error || `the server answered ${response.status} ${response.statusText}`);
    }
    showResult(body);
    expectedSeconds = body.seconds;
    setStatus(`Matched ${filename} in ${stop().toFixed(1)} s.`);
  } catch (error) {
    stop();
    setStatus('');
    showError(`Could not match ${filename}: ${error.message}`);
  } finally {
    setBusy(false);
  }
}

function score(scores, key) {
  return scores ? scores[key].toFixed(2) : 'not refined';
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text;
  row.append(td);
  return td;
}

// Where a voice came from, without folders: "FILE.syx:SLOT", "model WORKDIR", "search from ...".
function shortSource(source) {
  const [, search, where] = source.match(/^(search from )?(.*)$/);
  const base = (path) => path.replace(/\/+$/, '').split('/').pop();
  const named = where.startsWith('library:') ? base(where.slice(8)) : `model ${base(where)}`;
  return (search || '') + named;
}

// The bank's voices, each with a player that fetches its rendering when played.
function showAlternatives(alternatives) {
  const rows = $('alternatives').tBodies[0];
  rows.replaceChildren();
  for (const alternative of alternatives) {
    const row = document.createElement('tr');
    cell(row, alternative.slot);
    cell(row, alternative.name);
    cell(row, alternative.algorithm);
    cell(row, alternative.mfccd13.toFixed(2));
    cell(row, shortSource(alternative.source));
    const player = document.createElement('audio');
    player.controls = true;
    player.preload = 'none';
    player.src = alternative.link;
    player.setAttribute('aria-label', `Play slot ${alternative.slot}, ${alternative.name}`);
    cell(row, '').append(player);
    rows.append(row);
  }
}

function showResult(body) {
  const { network, refined } = body;
  $('result-heading').textContent = `Match for ${body.name}`;
  $('input-audio').src = body.links.input;
  $('match-audio').src = body.links.wav;
  $('spectrogram').src = body.links.png;
  $('network13').textContent = score(network, 'mfccd13');
  $('network30').textContent = score(network, 'mfccd30');
  $('refined13').textContent = score(refined, 'mfccd13');
  $('refined30').textContent = score(refined, 'mfccd30');
  $('algorithm').textContent = body.algorithm;
  $('pitch').textContent = body.pitch.note;
  $('time').textContent = `${body.seconds.toFixed(1)} s, ${body.candidates} candidates, `
    + `${body.refine_renders} refinement renders`;
  const files = body.mfccd_of_files;
  $('files-note').hidden = !files;
  $('files-note').textContent = files ? `s2s-mfccd on your file and the match's .wav gives `
    + `${files.mfccd13.toFixed(2)}: ${files.why.replaceAll('NAME', body.name)}.` : '';
  for (const kind of ['syx', 'bank', 'wav', 'json']) {
    $(`${kind}-link`).href = body.links[kind];
    $(`${kind}-link`).download = body.outputs[kind];
  }
  showAlternatives(body.alternatives);
  $('result').hidden = false;
}

// Any sound file dropped on the page is matched.
function acceptDrops() {
  const zone = document.querySelector('.drop-zone');
  const busy = () => $('upload-button').disabled;
  document.addEventListener('dragover', (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = busy() ? 'none' : 'copy';
    zone.classList.add('dragging');
  });
  document.addEventListener('dragleave', (event) => {
    if (!event.relatedTarget) {
      zone.classList.remove('dragging');
    }
  });
  document.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    const file = event.dataTransfer.files[0];
    if (file && !busy()) {
      match(file, file.name);
    }
  });
}

// Mono float samples -> a 16-bit PCM WAV file (libsndfile reads it; browsers' webm it may not).
function encodeWav(samples, sampleRate) {
  const view = new DataView(new ArrayBuffer(44 + 2 * samples.length));
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  view.setUint32(4, 36 + 2 * samples.length, true);
  text(8, 'WAVE');
  text(12, 'fmt ');
  view.setUint32(16, 16, true);  // fmt chunk size
  view.setUint16(20, 1, true);  // PCM
  view.setUint16(22, 1, true);  // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, 2 * sampleRate, true);  // bytes per second
  view.setUint16(32, 2, true);  // bytes per frame
  view.setUint16(34, 16, true);  // bits per sample
  text(36, 'data');
  view.setUint32(40, 2 * samples.length, true);
  samples.forEach((s, i) => view.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return new Blob([view], { type: 'audio/wav' });
}

let recording = null;  // { stream, context, chunks, timer } while recording

async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  const context = new AudioContext();
  await context.audioWorklet.addModule('/static/recorder.js');
  const node = new AudioWorkletNode(context, 'recorder');
  const chunks = [];
  node.port.onmessage = (event) => chunks.push(event.data);
  context.createMediaStreamSource(stream).connect(node).connect(context.destination);
  const timer = setTimeout(stopRecording, MAX_RECORD_SECONDS * 1000);
  recording = { stream, context, chunks, timer };
  $('record-button').textContent = 'Stop and match';
  $('upload-button').disabled = true;
  setStatus(`Recording… (at most ${MAX_RECORD_SECONDS} s)`);
}

async function stopRecording() {
  const { stream, context, chunks, timer } = recording;
  recording = null;
  clearTimeout(timer);
  stream.getTracks().forEach((track) => track.stop());
  await context.close();
  $('record-button').textContent = 'Start recording';
  const samples = new Float32Array(chunks.reduce((n, chunk) => n + chunk.length, 0));
  chunks.reduce((offset, chunk) => { samples.set(chunk, offset); return offset + chunk.length; }, 0);
  await match(encodeWav(samples, context.sampleRate), 'recording.wav');
}

async function toggleRecording() {
  showError('');
  try {
    await (recording ? stopRecording() : startRecording());
  } catch (error) {
    recording = null;
    $('record-button').textContent = 'Start recording';
    setBusy(false);
    setStatus('');
    showError(`Could not record: ${error.message}`);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  acceptDrops();
  fetch('/ping').then((r) => r.json()).then((ping) => {
    expectedSeconds = expectedSeconds || ping.expected_seconds || null;
  }).catch(() => {});
  $('upload-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const file = $('sound-file').files[0];
    if (file) {
      match(file, file.name);
    }
  });
  if (navigator.mediaDevices && window.AudioWorkletNode) {
    $('record-button').addEventListener('click', toggleRecording);
  } else {
    $('record-button').disabled = true;
    $('record-label').textContent = 'Recording needs a browser with microphone access on a '
      + 'secure page (https, or this server opened as localhost / 127.0.0.1).';
  }
});
