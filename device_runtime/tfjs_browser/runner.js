// Runs a TF.js graph model inside the page on the cpu, wasm, webgl or webgpu backend, for
// device_runtime/tfjs_browser.py, which calls these through page.evaluate:
//
//   edgeRunner.init({backend, threads})   -> backend in use, versions, isolation, backend_info
//   edgeRunner.load({url})                -> load_ms, the model's inputs and outputs
//   edgeRunner.infer({inputs, outputs, bench, timeout_ms}) -> outputs, timings
//
// `bench` is the harness's Protocol as a dict (protocol.js, loaded before this file, runs it: warm-up,
// samples of back-to-back inferences filling min_sample_ms, the steadiness check).
//
// serve-bench's run.js calls the same entry points from a phone's browser.
// Tensors cross the boundary as {name, dtype, shape, data}: data is base64 of the little-endian values,
// dtype float32, int32 or bool (one byte per value). An input's name is the model's (null: its input at
// that position); `outputs` names the outputs to return, in order (null: the model's own order). No entry
// point rejects: a failure resolves to {error, stage} with stage one of backend, load, input, run, bench, timeout.
'use strict';

const BACKENDS = ['cpu', 'wasm', 'webgl', 'webgpu'];
// TF.js files sit in tfjs/ beside this script (the harness serves it at /, serve-bench under /TOKEN/)
const BASE = new URL('.', document.currentScript.src).pathname;
const SCRIPTS = { wasm: `${BASE}tfjs/tf-backend-wasm.min.js`, webgpu: `${BASE}tfjs/tf-backend-webgpu.min.js` };
const state = { model: null, needsAsync: false, firstMs: null, adapter: null };
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

const ARRAYS = { float32: Float32Array, int32: Int32Array, bool: Uint8Array };

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

async function backendInfo(backend) {
  if (backend === 'webgl') {
    const gl = tf.backend().gpgpu.gl;
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    return {
      webgl_version: tf.env().getNumber('WEBGL_VERSION'),
      renderer: debug ? gl.getParameter(debug.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER),
      vendor: debug ? gl.getParameter(debug.UNMASKED_VENDOR_WEBGL) : gl.getParameter(gl.VENDOR),
    };
  }
  if (backend === 'webgpu') {
    const adapter = state.adapter;
    const info = adapter.info || (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : {});
    return {
      vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
      is_fallback_adapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
    };
  }
  if (backend === 'wasm') {
    return {
      threads: tf.wasm.getThreadsCount(),
      simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
      multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
    };
  }
  return {};
}

async function init({ backend, threads }) {
  stage = 'backend';
  if (!BACKENDS.includes(backend)) throw new Error(`unknown backend '${backend}'; available: ${BACKENDS.join(', ')}`);
  if (SCRIPTS[backend]) await loadScript(SCRIPTS[backend]);
  if (backend === 'webgpu') {
    if (!navigator.gpu) {
      throw new Error('navigator.gpu is missing: WebGPU is disabled (Chromium on Linux needs --enable-unsafe-webgpu)');
    }
    state.adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!state.adapter) {
      throw new Error('navigator.gpu.requestAdapter() returned null: no WebGPU adapter (no Vulkan driver or SwiftShader)');
    }
  }
  if (backend === 'wasm') {
    tf.wasm.setWasmPaths(`${BASE}tfjs/`);
    if (threads) tf.wasm.setThreadsCount(threads);
  }
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend '${backend}' failed to initialise`);
  await tf.ready();
  return {
    backend: tf.getBackend(), tfjs_version: tf.version.tfjs, user_agent: navigator.userAgent,
    cross_origin_isolated: self.crossOriginIsolated, hardware_concurrency: navigator.hardwareConcurrency,
    timer_resolution_ms: timerResolutionMs(), backend_info: await backendInfo(backend),
  };
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) {
    const why = response.status === 404 ? ', no such file' : '';
    throw new Error(`${url} could not be read (HTTP ${response.status}${why})`);
  }
  return response;
}

/** An IOHandler reading model.json and its shards (concatenated in manifest order) from the local
 * server; unlike tf.io.http it refuses a missing shard instead of decoding the error page as weights. */
function serverHandler(url) {
  const base = url.slice(0, url.lastIndexOf('/') + 1);
  return {
    load: async () => {
      const model = await (await fetchOk(url)).json();
      if (!model.modelTopology || !Array.isArray(model.weightsManifest)) {
        throw new Error(`${url} is not a TF.js graph model (no modelTopology/weightsManifest)`);
      }
      const weightSpecs = model.weightsManifest.flatMap((group) => group.weights);
      const paths = model.weightsManifest.flatMap((group) => group.paths);
      const read = async (p) => new Uint8Array(await (await fetchOk(base + p)).arrayBuffer());
      const shards = await Promise.all(paths.map(read));
      const weightData = new Uint8Array(shards.reduce((n, shard) => n + shard.length, 0));
      shards.reduce((offset, shard) => (weightData.set(shard, offset), offset + shard.length), 0);
      const { modelTopology, format, generatedBy, convertedBy, signature, userDefinedMetadata, modelInitializer,
        initializerSignature } = model;
      return { modelTopology, weightSpecs, weightData: weightData.buffer, format, generatedBy, convertedBy, signature,
        userDefinedMetadata, modelInitializer, initializerSignature };
    },
  };
}

async function load({ url }) {
  stage = 'load';
  const t0 = performance.now();
  state.model = await tf.loadGraphModel(serverHandler(url));
  const inputs = state.model.inputs.map((t) => ({ name: t.name, shape: t.shape || null, dtype: t.dtype }));
  return { load_ms: performance.now() - t0, inputs, outputs: state.model.outputNodes };
}

/** `execute` (synchronous graphs), falling back to `executeAsync` for control flow / dynamic shapes; always a list. */
async function execute(feed, outputs) {
  if (!state.needsAsync) {
    try {
      const y = state.model.execute(feed, outputs);
      return Array.isArray(y) ? y : [y];
    } catch (error) {
      if (!/executeAsync/.test(String(error && error.message))) throw error;
      state.needsAsync = true;
    }
  }
  const y = await state.model.executeAsync(feed, outputs);
  return Array.isArray(y) ? y : [y];
}

/** One batch through the model: every output's values, dtype and shape (its tensors disposed). */
async function runOnce(feed, outputs) {
  const ys = await execute(feed, outputs);
  const results = [];
  for (const y of ys) results.push({ values: await y.data(), dtype: y.dtype, shape: y.shape });
  ys.forEach((y) => y.dispose());
  return results;
}

/** Rows [start, start + valid) of every input as tensors of `batch` rows (the last row repeated to fill it),
 * keyed by the model's input names. */
function batchTensors(inputs, start, valid, batch) {
  const named = {};
  inputs.forEach((input, i) => {
    const size = input.sampleSize;
    const chunk = new ARRAYS[input.dtype](batch * size);
    chunk.set(input.data.subarray(start * size, (start + valid) * size));
    for (let row = valid; row < batch; row++) chunk.copyWithin(row * size, (valid - 1) * size, valid * size);
    named[input.name ?? state.model.inputs[i].name] = tf.tensor(chunk, [batch, ...input.sampleShape], input.dtype);
  });
  return named;
}

const disposeAll = (named) => Object.values(named).forEach((t) => t.dispose());

/** The harness's protocol over one batch per inference, cycling over the real samples (protocol.js). */
async function benchmark(batches, outputs, bench, deadline) {
  try {
    return await edgeProtocol.timeSamples((i) => runOnce(batches[i % batches.length], outputs), bench, { deadline });
  } catch (error) {
    if (error.timeout) stage = 'timeout';
    throw error;
  }
}

/** The inputs as {name, dtype, count, sampleShape, sampleSize, data}, checked against each other and the model. */
function decodeInputs(inputs) {
  if (!Array.isArray(inputs) || inputs.length !== state.model.inputs.length) {
    throw new Error(`got ${Array.isArray(inputs) ? inputs.length : 0} input(s) but the model takes ` +
      `${state.model.inputs.length} (${state.model.inputs.map((t) => t.name).join(', ')})`);
  }
  const decoded = inputs.map(({ name, dtype, shape, data }) => {
    const values = fromBase64(data, dtype);
    const [count, ...sampleShape] = shape;
    const sampleSize = sampleShape.reduce((a, b) => a * b, 1);
    if (values.length !== count * sampleSize) throw new Error(`got ${values.length} values for input '${name}' of shape [${shape}]`);
    return { name, dtype, count, sampleShape, sampleSize, data: values };
  });
  if (new Set(decoded.map((input) => input.count)).size > 1) throw new Error('the inputs hold different numbers of samples');
  return decoded;
}

async function infer({ inputs, outputs, bench, timeout_ms }) {
  stage = 'input';
  if (!state.model) throw new Error('no model loaded');
  const deadline = performance.now() + timeout_ms;
  const decoded = decodeInputs(inputs);
  const count = decoded[0].count;
  const wanted = outputs || undefined;
  const names = outputs || state.model.outputNodes;
  const declared = state.model.inputs[0].shape;
  const batch = declared && declared[0] > 0 ? declared[0] : count;

  stage = 'run';
  const parts = names.map(() => []);
  for (let start = 0; start < count; start += batch) {
    const valid = Math.min(batch, count - start);
    const named = batchTensors(decoded, start, valid, batch);
    const t0 = performance.now();
    const results = await runOnce(named, wanted);
    if (state.firstMs === null) state.firstMs = performance.now() - t0;
    disposeAll(named);
    results.forEach((r, i) => parts[i].push({ ...r, values: r.values.subarray(0, valid * (r.values.length / batch)) }));
    if (performance.now() > deadline) {
      stage = 'timeout';
      throw new Error(`inference passed its time limit at sample ${start}`);
    }
  }
  const results = parts.map((chunks, i) => {
    const values = new ARRAYS[chunks[0].dtype](chunks.reduce((n, chunk) => n + chunk.values.length, 0));
    chunks.reduce((offset, chunk) => (values.set(chunk.values, offset), offset + chunk.values.length), 0);
    return { name: names[i], dtype: chunks[0].dtype, shape: [count, ...chunks[0].shape.slice(1)], data: toBase64(values) };
  });

  let timed = { latencies_ms: null, inferences: null, wall_ms: null };
  if (bench) {
    stage = 'bench';
    const benchBatch = declared && declared[0] > 0 ? declared[0] : 1;
    const batches = [];
    for (let start = 0; start + benchBatch <= count; start += benchBatch) {
      batches.push(batchTensors(decoded, start, benchBatch, benchBatch));
    }
    if (!batches.length) throw new Error(`the benchmark needs at least ${benchBatch} samples (the model's batch), got ${count}`);
    try {
      timed = await benchmark(batches, wanted, bench, deadline);
    } finally {
      batches.forEach(disposeAll);
    }
  }
  const memory = performance.memory ? { used_js_heap_bytes: performance.memory.usedJSHeapSize } : {};
  return {
    backend: tf.getBackend(), outputs: results, batch, first_inference_ms: state.firstMs,
    latencies_ms: timed.latencies_ms, inferences: timed.inferences, bench_wall_ms: timed.wall_ms,
    num_tensors: tf.memory().numTensors, ...memory,
  };
}

window.edgeRunner = {
  init: (args) => guarded(() => init(args)),
  load: (args) => guarded(() => load(args)),
  infer: (args) => guarded(() => infer(args)),
};
