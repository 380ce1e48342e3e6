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

// Sends a sound to the server and shows the match or the server's error message.
async function match(file, filename) {
  const form = new FormData();
  form.append('file', file, filename);
  showError('');
  setStatus(`Matching ${filename}…`);
  setBusy(true);
  try {
    const response = await fetch('/match', { method: 'POST', body: form });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(body.error || `the server answered ${response.status} ${response.statusText}`);
    }
    showResult(body);
    setStatus(`Matched ${filename}.`);
  } catch (error) {
    setStatus('');
    showError(`Could not match ${filename}: ${error.message}`);
  } finally {
    setBusy(false);
  }
}

function score(scores, key) {
  return scores ? scores[key].toFixed(2) : 'not refined';
}

function showResult(body) {
  const { network, refined } = body.mfccd;
  $('result-heading').textContent = `Match for ${body.name}`;
  $('input-audio').src = body.links.input;
  $('match-audio').src = body.links.wav;
  $('spectrogram').src = body.links.png;
  $('network13').textContent = score(network, 'mfccd13');
  $('network30').textContent = score(network, 'mfccd30');
  $('refined13').textContent = score(refined, 'mfccd13');
  $('refined30').textContent = score(refined, 'mfccd30');
  $('algorithm').textContent = body.algorithm;
  const heard = body.pitch.input_note ? `input ${body.pitch.input_note}; ` : '';
  $('pitch').textContent = heard + body.pitch.note;
  $('time').textContent = `${body.seconds.toFixed(1)} s, ${body.candidates} candidates, `
    + `${body.refine_renders} refinement renders`;
  for (const kind of ['syx', 'json']) {
    $(`${kind}-link`).href = body.links[kind];
    $(`${kind}-link`).download = `${body.name}.${kind}`;
  }
  $('result').hidden = false;
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
