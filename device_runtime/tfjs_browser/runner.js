// Runs a TF.js graph model inside the page on the cpu, wasm, webgl or webgpu backend, for
// device_runtime/tfjs_browser.py, which calls these through page.evaluate:
//
//   edgeRunner.init({backend, threads})   -> backend in use, versions, isolation, backend_info
//   edgeRunner.load({url})                -> load_ms, input shape
//   edgeRunner.infer({input, shape, bench, timeout_ms}) -> outputs (base64 float32), timings
//
// serve-bench's run.js calls the same entry points from a phone's browser.
// Tensors cross the boundary as base64 little-endian float32. No entry point rejects: a failure
// resolves to {error, stage} with stage one of backend, load, input, run, bench, timeout.
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

function fromBase64(text) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

function toBase64(floats) {
  const bytes = new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
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
  return { load_ms: performance.now() - t0, input_shape: state.model.inputs[0].shape || null };
}

/** `execute` (synchronous graphs), falling back to `executeAsync` for control flow / dynamic shapes. */
async function execute(x) {
  if (!state.needsAsync) {
    try {
      return state.model.execute(x);
    } catch (error) {
      if (!/executeAsync/.test(String(error && error.message))) throw error;
      state.needsAsync = true;
    }
  }
  return state.model.executeAsync(x);
}

/** One batch through the model: the first output's values (its tensors disposed) and shape. */
async function runOnce(x) {
  let y = await execute(x);
  if (Array.isArray(y)) {
    y.slice(1).forEach((t) => t.dispose());
    y = y[0];
  }
  const values = await y.data();
  const shape = y.shape;
  y.dispose();
  return { values, shape };
}

/** MLPerf-style timing of one batch per run over the real samples: warm-up excluded, then at
 * least min_runs runs and min_ms milliseconds (at most max_runs). */
async function benchmark(batches, bench, deadline) {
  for (let i = 0; i < bench.warmup; i++) await runOnce(batches[i % batches.length]);
  const latencies = [];
  const started = performance.now();
  while (latencies.length < bench.max_runs) {
    const t0 = performance.now();
    await runOnce(batches[latencies.length % batches.length]);
    const t1 = performance.now();
    latencies.push(t1 - t0);
    if (t1 > deadline) {
      stage = 'timeout';
      throw new Error(`benchmark passed its time limit after ${latencies.length} runs`);
    }
    if (latencies.length >= bench.min_runs && t1 - started >= bench.min_ms) break;
  }
  return { latencies, wallMs: performance.now() - started };
}

async function infer({ input, shape, bench, timeout_ms }) {
  stage = 'input';
  if (!state.model) throw new Error('no model loaded');
  const deadline = performance.now() + timeout_ms;
  const data = fromBase64(input);
  const [count, ...sample] = shape;
  const sampleSize = sample.reduce((a, b) => a * b, 1);
  if (data.length !== count * sampleSize) throw new Error(`got ${data.length} values for shape [${shape}]`);
  const declared = state.model.inputs[0].shape;
  const batch = declared && declared[0] > 0 ? declared[0] : count;

  stage = 'run';
  const outputs = [];
  let outputSample = null;
  for (let start = 0; start < count; start += batch) {
    const valid = Math.min(batch, count - start);
    const chunk = new Float32Array(batch * sampleSize);
    chunk.set(data.subarray(start * sampleSize, (start + valid) * sampleSize));
    for (let i = valid; i < batch; i++) chunk.copyWithin(i * sampleSize, (valid - 1) * sampleSize, valid * sampleSize);
    const x = tf.tensor(chunk, [batch, ...sample], 'float32');
    const t0 = performance.now();
    const { values, shape: outShape } = await runOnce(x);
    if (state.firstMs === null) state.firstMs = performance.now() - t0;
    x.dispose();
    outputSample = outShape.slice(1);
    outputs.push(Float32Array.from(values.subarray(0, valid * (values.length / batch))));
    if (performance.now() > deadline) {
      stage = 'timeout';
      throw new Error(`inference passed its time limit at sample ${start}`);
    }
  }
  const result = new Float32Array(outputs.reduce((n, part) => n + part.length, 0));
  outputs.reduce((offset, part) => (result.set(part, offset), offset + part.length), 0);

  let latencies = null;
  let benchWallMs = null;
  if (bench) {
    stage = 'bench';
    const benchBatch = declared && declared[0] > 0 ? declared[0] : 1;
    const batches = [];
    for (let start = 0; start + benchBatch <= count; start += benchBatch) {
      const values = data.slice(start * sampleSize, (start + benchBatch) * sampleSize);
      batches.push(tf.tensor(values, [benchBatch, ...sample], 'float32'));
    }
    if (!batches.length) throw new Error(`the benchmark needs at least ${benchBatch} samples (the model's batch), got ${count}`);
    try {
      ({ latencies, wallMs: benchWallMs } = await benchmark(batches, bench, deadline));
    } finally {
      batches.forEach((t) => t.dispose());
    }
  }
  const memory = performance.memory ? { used_js_heap_bytes: performance.memory.usedJSHeapSize } : {};
  return {
    backend: tf.getBackend(), output: toBase64(result), output_shape: [count, ...outputSample], batch,
    first_inference_ms: state.firstMs, latencies_ms: latencies, bench_wall_ms: benchWallMs,
    num_tensors: tf.memory().numTensors, ...memory,
  };
}

window.edgeRunner = {
  init: (args) => guarded(() => init(args)),
  load: (args) => guarded(() => load(args)),
  infer: (args) => guarded(() => infer(args)),
};
