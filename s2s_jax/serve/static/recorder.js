// AudioWorklet processor: posts each block of the input, channels averaged, to the page.
class Recorder extends AudioWorkletProcessor {
  process(inputs) {
    const channels = inputs[0];
    if (channels.length > 0) {
      const mono = new Float32Array(channels[0].length);
      for (const channel of channels) {
        channel.forEach((sample, i) => { mono[i] += sample / channels.length; });
      }
      this.port.postMessage(mono, [mono.buffer]);
    }
    return true;
  }
}

registerProcessor('recorder', Recorder);
