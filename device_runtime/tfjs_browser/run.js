// One serve-bench run in its own frame: init the backend, load the model, time it on the real samples (one array
// per model input) with the protocol from plan.json (runner.js's benchmark, the harness's), and hand the result
// to the page.
// Wrapped in a function: runner.js defines globals of its own (toBase64, ...) in this page.
(() => {
'use strict';

function bufferToBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

/** The top class of each row of an output (runner.js's fromBase64 decodes it). */
function argmaxRows(output) {
  const values = fromBase64(output.data, output.dtype);
  const width = output.shape.slice(1).reduce((a, b) => a * b, 1);
  const predictions = [];
  for (let row = 0; row < output.shape[0]; row++) {
    let best = 0;
    for (let i = 1; i < width; i++) if (values[row * width + i] > values[row * width + best]) best = i;
    predictions.push(best);
  }
  return predictions;
}

async function fetchInput(input) {
  const response = await fetch(input.url);
  if (!response.ok) throw new Error(`${input.url} could not be read (HTTP ${response.status})`);
  return { name: input.name, dtype: input.dtype, shape: input.shape, data: bufferToBase64(await response.arrayBuffer()) };
}

async function run() {
  const query = new URLSearchParams(location.search);
  const index = Number(query.get('artifact'));
  const backend = query.get('backend');
  const plan = await (await fetch('plan.json')).json();
  const artifact = plan.artifacts[index];
  const info = await edgeRunner.init({ backend });
  if (info.error) return { error: `${info.stage}: ${info.error}` };
  const loaded = await edgeRunner.load({ url: artifact.model });
  if (loaded.error) return { error: `${loaded.stage}: ${loaded.error}` };
  const inputs = await Promise.all(artifact.inputs.map(fetchInput));
  const reply = await edgeRunner.infer({
    inputs, outputs: artifact.outputs, timeout_ms: 600000,
    bench: plan.protocol,
  });
  if (reply.error) return { error: `${reply.stage}: ${reply.error}` };
  return {
    result: {
      latencies_ms: reply.latencies_ms, bench_wall_ms: reply.bench_wall_ms, load_ms: loaded.load_ms,
      first_inference_ms: reply.first_inference_ms,
      // accuracy is scored for a single-output (classifier) model only
      predictions: reply.outputs.length === 1 ? argmaxRows(reply.outputs[0]) : null,
      info: { ...info, backend: reply.backend, threads: backend === 'wasm' ? (info.backend_info || {}).threads : null },
    },
  };
}

run().then((message) => parent.postMessage(message, location.origin),
  (error) => parent.postMessage({ error: String((error && error.message) || error) }, location.origin));
})();
