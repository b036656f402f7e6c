// Runs an .onnx model inside the page with ONNX Runtime Web on the wasm or webgpu execution provider, for
// device_runtime/ort_browser.py, which calls these through page.evaluate:
//
//   ortRunner.init({backend, threads})          -> versions, isolation, timer resolution, backend_info
//   ortRunner.load({url})                       -> load_ms, the session's input and output names
//   ortRunner.infer({inputs, batch, bench, timeout_ms}) -> outputs, timings
//
// `bench` is the harness's Protocol as a dict; protocol.js (tfjs_browser/protocol.js, served at /protocol.js)
// runs it: warm-up, samples of back-to-back inferences filling min_sample_ms, the steadiness check.
// Tensors cross the boundary as {name, dtype, shape, data}: data is base64 of the little-endian values;
// int64 travels as 8 bytes a value (a BigInt64Array here), bool as one byte. Inputs come in the model's order at
// a whole number of the model's batches; the page runs them `batch` rows at a time. No entry point rejects: a
// failure resolves to {error, stage} with stage one of backend, load, input, run, bench, timeout.
'use strict';

const BACKENDS = ['wasm', 'webgpu'];
// wasm: the CPU-only build (ort-wasm-simd-threaded.wasm); webgpu: the WebGPU build (its own wasm binary)
const SCRIPTS = { wasm: '/ort/ort.wasm.min.js', webgpu: '/ort/ort.webgpu.min.js' };
const ARRAYS = {
  float32: Float32Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array, int8: Int8Array, bool: Uint8Array,
};
const state = { session: null, backend: null, adapter: null, firstMs: null };
let stage = 'backend';

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src} from the local server`));
    document.head.appendChild(script);
  });
}

function fromBase64(text, dtype) {
  const Type = ARRAYS[dtype];
  if (!Type) throw new Error(`dtype ${dtype} is not one of ${Object.keys(ARRAYS).join(', ')}`);
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Type(bytes.buffer);
}

function toBase64(values) {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function guarded(fn) {
  try {
    return await fn();
  } catch (error) {
    return { error: String((error && error.message) || error), stage };
  }
}

/** Smallest positive step of performance.now(): ~0.005 ms when cross-origin isolated, 0.1 ms otherwise. */
function timerResolutionMs() {
  let best = Infinity;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    let t1 = performance.now();
    while (t1 === t0) t1 = performance.now();
    best = Math.min(best, t1 - t0);
  }
  return best;
}

/** The .wasm binaries the page fetched (which build of ONNX Runtime Web runs). */
function wasmBinaries() {
  return performance.getEntriesByType('resource').map((e) => e.name.split('/').pop()).filter((n) => n.endsWith('.wasm'));
}

async function backendInfo() {
  // simd: ONNX Runtime Web ships SIMD builds only (ort-wasm-simd-threaded*.wasm; wasm_binaries names the one loaded)
  const info = { wasm_binaries: wasmBinaries(), threads: ort.env.wasm.numThreads,
    multithread: self.crossOriginIsolated && ort.env.wasm.numThreads > 1, simd: true };
  if (state.backend === 'webgpu') {
    const adapter = state.adapter;
    const gpu = adapter.info || (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : {});
    Object.assign(info, {
      vendor: gpu.vendor, architecture: gpu.architecture, device: gpu.device, description: gpu.description,
      is_fallback_adapter: Boolean(gpu.isFallbackAdapter ?? adapter.isFallbackAdapter),
    });
  }
  return info;
}

async function init({ backend, threads }) {
  stage = 'backend';
  if (!BACKENDS.includes(backend)) throw new Error(`unknown backend '${backend}'; available: ${BACKENDS.join(', ')}`);
  await loadScript(SCRIPTS[backend]);
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.proxy = false;
  // numThreads > 1 needs SharedArrayBuffer (a cross-origin isolated page); ONNX Runtime Web drops to 1 otherwise
  if (threads) ort.env.wasm.numThreads = threads;
  if (backend === 'webgpu') {
    if (!navigator.gpu) {
      throw new Error('navigator.gpu is missing: WebGPU is disabled (Chromium on Linux needs --enable-unsafe-webgpu)');
    }
    state.adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!state.adapter) {
      throw new Error('navigator.gpu.requestAdapter() returned null: no WebGPU adapter (no Vulkan driver or SwiftShader)');
    }
    ort.env.webgpu.adapter = state.adapter;
  }
  state.backend = backend;
  return {
    ort_web_version: ort.env.versions.web || ort.env.versions.common, user_agent: navigator.userAgent,
    cross_origin_isolated: self.crossOriginIsolated, hardware_concurrency: navigator.hardwareConcurrency,
    timer_resolution_ms: timerResolutionMs(),
  };
}

async function load({ url }) {
  stage = 'load';
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} could not be read (HTTP ${response.status})`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const t0 = performance.now();
  state.session = await ort.InferenceSession.create(bytes, {
    executionProviders: [state.backend], graphOptimizationLevel: 'all',
  });
  return {
    load_ms: performance.now() - t0, inputs: state.session.inputNames, outputs: state.session.outputNames,
    backend_info: await backendInfo(),
  };
}

/** The inputs as {name, dtype, shape, data}, checked against the session's input names and each other. */
function decodeInputs(inputs) {
  const names = state.session.inputNames;
  if (!Array.isArray(inputs) || inputs.length !== names.length) {
    throw new Error(`got ${Array.isArray(inputs) ? inputs.length : 0} input(s) but the model takes ${names.length} ` +
      `(${names.join(', ')})`);
  }
  const decoded = inputs.map(({ name, dtype, shape, data }) => {
    if (!names.includes(name)) throw new Error(`the model has no input '${name}' (it has ${names.join(', ')})`);
    const values = fromBase64(data, dtype);
    const size = shape.reduce((a, b) => a * b, 1);
    if (values.length !== size) throw new Error(`got ${values.length} values for input '${name}' of shape [${shape}]`);
    return { name, dtype, shape, data: values };
  });
  if (new Set(decoded.map((input) => input.shape[0])).size > 1) throw new Error('the inputs hold different numbers of samples');
  return decoded;
}

/** Rows [start, start + batch) of every input as ort.Tensors keyed by input name. */
function batchFeed(inputs, start, batch) {
  const feed = {};
  for (const input of inputs) {
    const rowSize = input.data.length / input.shape[0];
    const rows = input.data.subarray(start * rowSize, (start + batch) * rowSize);
    feed[input.name] = new ort.Tensor(input.dtype, rows, [batch, ...input.shape.slice(1)]);
  }
  return feed;
}

/** One batch through the session: every output's values, dtype and dims, in the session's output order. */
async function runOnce(feed) {
  const results = await state.session.run(feed);
  return state.session.outputNames.map((name) => {
    const tensor = results[name];
    return { values: tensor.data, dtype: tensor.type, shape: tensor.dims };
  });
}

async function infer({ inputs, batch, bench, timeout_ms }) {
  stage = 'input';
  if (!state.session) throw new Error('no model loaded');
  const deadline = performance.now() + timeout_ms;
  const decoded = decodeInputs(inputs);
  const count = decoded[0].shape[0];
  if (count % batch) throw new Error(`got ${count} samples, not a whole number of the model's batch (${batch})`);
  const feeds = [];
  for (let start = 0; start < count; start += batch) feeds.push(batchFeed(decoded, start, batch));

  stage = 'run';
  const parts = state.session.outputNames.map(() => []);
  for (const feed of feeds) {
    const t0 = performance.now();
    const results = await runOnce(feed);
    if (state.firstMs === null) state.firstMs = performance.now() - t0;
    results.forEach((r, i) => parts[i].push(r));
    if (performance.now() > deadline) {
      stage = 'timeout';
      throw new Error(`inference passed its time limit after ${parts[0].length} batches`);
    }
  }
  const outputs = parts.map((chunks, i) => {
    const values = new chunks[0].values.constructor(chunks.reduce((n, chunk) => n + chunk.values.length, 0));
    chunks.reduce((offset, chunk) => (values.set(chunk.values, offset), offset + chunk.values.length), 0);
    const shape = [chunks.reduce((n, chunk) => n + chunk.shape[0], 0), ...chunks[0].shape.slice(1)];
    return { name: state.session.outputNames[i], dtype: chunks[0].dtype, shape, data: toBase64(values) };
  });

  let timed = { latencies_ms: null, inferences: null, wall_ms: null };
  if (bench) {
    stage = 'bench';
    try {
      timed = await edgeProtocol.timeSamples((i) => runOnce(feeds[i % feeds.length]), bench, { deadline });
    } catch (error) {
      if (error.timeout) stage = 'timeout';
      throw error;
    }
  }
  const memory = performance.memory ? { used_js_heap_bytes: performance.memory.usedJSHeapSize } : {};
  return {
    outputs, batch, first_inference_ms: state.firstMs, latencies_ms: timed.latencies_ms, inferences: timed.inferences,
    bench_wall_ms: timed.wall_ms, ...memory,
  };
}

window.ortRunner = {
  init: (args) => guarded(() => init(args)),
  load: (args) => guarded(() => load(args)),
  infer: (args) => guarded(() => infer(args)),
};
