#!/usr/bin/env node
// Runs a TF.js graph model (model.json + weight shards) from a local directory in Node.js,
// without network, on the `cpu` or `wasm` backend.
//
//   node run_graph_model.js --model DIR --backend cpu|wasm --input FILE --shape 360,8,8,1 \
//        --output FILE [--threads N] [--batch N]
//
// Input and output files are raw little-endian float32. On success one JSON line goes to
// stdout (backend, versions, output shape, graph ops, timings); on any failure one JSON line
// with "error" and "stage" (args, backend, load, input, run), and the exit status is 1.
// Everything else (TF.js notices) goes to stderr. A model whose input has a fixed batch
// (models exported with batch 1) runs in chunks of that batch; otherwise --batch (default: all).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const writeResult = (object) => fs.writeSync(1, JSON.stringify(object) + '\n');
// Keep stdout for the one JSON line: library chatter goes to stderr.
console.log = console.info = console.warn = console.error;

const BACKENDS = ['cpu', 'wasm'];
let stage = 'args';
const USAGE = 'usage: node run_graph_model.js --model DIR --backend cpu|wasm --input FILE ' +
  '--shape N,D1,... --output FILE [--threads N] [--batch N] ' +
  '[--bench-warmup N --bench-min-runs N --bench-min-ms MS --bench-max-runs N]';
const BENCH_FLAGS = ['bench-warmup', 'bench-min-runs', 'bench-min-ms', 'bench-max-runs'];

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    if (!key.startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`bad argument '${key}'; ${USAGE}`);
    }
    args[key.slice(2)] = argv[i + 1];
  }
  for (const required of ['model', 'backend', 'input', 'shape', 'output']) {
    if (args[required] === undefined) throw new Error(`missing --${required}; ${USAGE}`);
  }
  if (!BACKENDS.includes(args.backend)) {
    throw new Error(`unknown backend '${args.backend}'; available: ${BACKENDS.join(', ')}`);
  }
  args.shape = args.shape.split(',').map(Number);
  if (args.shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`--shape must be positive integers separated by commas, got '${args.shape}'`);
  }
  for (const name of BENCH_FLAGS) {
    if (args[name] !== undefined) {
      args[name] = Number(args[name]);
      if (!Number.isFinite(args[name]) || args[name] < 0) throw new Error(`--${name} must be a number >= 0`);
    }
  }
  for (const name of ['threads', 'batch']) {
    if (args[name] !== undefined) {
      args[name] = Number(args[name]);
      if (!Number.isInteger(args[name]) || args[name] < 1) throw new Error(`--${name} must be a positive integer`);
    }
  }
  return args;
}

function toArrayBuffer(buffer) {
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
}

/** An IOHandler reading model.json and its shards (concatenated in manifest order) with fs. */
function fileHandler(modelDir) {
  return {
    load: async () => {
      const jsonPath = path.join(modelDir, 'model.json');
      if (!fs.existsSync(jsonPath)) throw new Error(`no model.json in ${modelDir}`);
      const model = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
      if (!model.modelTopology || !Array.isArray(model.weightsManifest)) {
        throw new Error(`${jsonPath} is not a TF.js graph model (no modelTopology/weightsManifest)`);
      }
      const weightSpecs = [];
      const shards = [];
      for (const group of model.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const shard of group.paths) shards.push(fs.readFileSync(path.join(modelDir, shard)));
      }
      return {
        modelTopology: model.modelTopology,
        weightSpecs,
        weightData: toArrayBuffer(Buffer.concat(shards)),
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        userDefinedMetadata: model.userDefinedMetadata,
        modelInitializer: model.modelInitializer,
        initializerSignature: model.initializerSignature,
      };
    },
  };
}

/** Unique, sorted op names of the graph, including those inside control-flow functions. */
function graphOps(modelDir) {
  const topology = JSON.parse(fs.readFileSync(path.join(modelDir, 'model.json'), 'utf8')).modelTopology;
  const nodes = [...(topology.node || [])];
  for (const fn of (topology.library && topology.library.function) || []) nodes.push(...(fn.nodeDef || []));
  return [...new Set(nodes.map((node) => node.op))].sort();
}

function readInput(file, shape) {
  if (os.endianness() !== 'LE') throw new Error('raw float32 files are little-endian; this host is big-endian');
  const data = new Float32Array(toArrayBuffer(fs.readFileSync(file)));
  const expected = shape.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new Error(`${file} holds ${data.length} float32 values but --shape ${shape.join(',')} needs ${expected}`);
  }
  return data;
}

async function setBackend(tf, backend, threads) {
  if (backend === 'wasm') {
    const wasm = require('@tensorflow/tfjs-backend-wasm');
    const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
    wasm.setWasmPaths(dist + path.sep);
    if (threads) wasm.setThreadsCount(threads);
  }
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend '${backend}' failed to initialise`);
  await tf.ready();
  if (backend === 'wasm') return require('@tensorflow/tfjs-backend-wasm').getThreadsCount();
  return 1;
}

/** `execute` (synchronous graphs), falling back to `executeAsync` for control flow / dynamic shapes. */
let needsAsync = false;
async function execute(model, x) {
  if (!needsAsync) {
    try {
      return model.execute(x);
    } catch (error) {
      if (!/executeAsync/.test(String(error && error.message))) throw error;
      needsAsync = true;
    }
  }
  return model.executeAsync(x);
}

/** MLPerf-style timing of one batch per run, cycling over the real samples: warm-up excluded,
 * then at least --bench-min-runs runs and --bench-min-ms milliseconds. */
async function benchmark(tf, model, input, sample, sampleSize, count, batch, args) {
  const inputs = [];
  for (let start = 0; start + batch <= count; start += batch) {
    inputs.push(tf.tensor(input.slice(start * sampleSize, (start + batch) * sampleSize), [batch, ...sample], 'float32'));
  }
  const runOnce = async (x) => {
    let y = await execute(model, x);
    if (Array.isArray(y)) {
      y.slice(1).forEach((t) => t.dispose());
      y = y[0];
    }
    await y.data();
    y.dispose();
  };
  for (let i = 0; i < args['bench-warmup']; i++) await runOnce(inputs[i % inputs.length]);
  const latencies = [];
  const maxRuns = args['bench-max-runs'] || 100000;
  const started = performance.now();
  while (latencies.length < maxRuns) {
    const t0 = performance.now();
    await runOnce(inputs[latencies.length % inputs.length]);
    latencies.push(performance.now() - t0);
    if (latencies.length >= args['bench-min-runs'] && performance.now() - started >= args['bench-min-ms']) break;
  }
  inputs.forEach((t) => t.dispose());
  return latencies;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  stage = 'backend';
  const tf = require('@tensorflow/tfjs');
  const threads = await setBackend(tf, args.backend, args.threads);

  stage = 'load';
  const loadStart = performance.now();
  const model = await tf.loadGraphModel(fileHandler(args.model));
  const loadMs = performance.now() - loadStart;

  stage = 'input';
  const [count, ...sample] = args.shape;
  const sampleSize = sample.reduce((a, b) => a * b, 1);
  const input = readInput(args.input, args.shape);
  const fixedBatch = model.inputs[0].shape && model.inputs[0].shape[0] > 0 ? model.inputs[0].shape[0] : null;
  const batch = fixedBatch || args.batch || count;

  stage = 'run';
  const outputs = [];
  let outputSample = null;
  let firstMs = null;
  const inferStart = performance.now();
  for (let start = 0; start < count; start += batch) {
    const valid = Math.min(batch, count - start);
    const chunk = new Float32Array(batch * sampleSize);
    chunk.set(input.subarray(start * sampleSize, (start + valid) * sampleSize));
    for (let i = valid; i < batch; i++) chunk.copyWithin(i * sampleSize, (valid - 1) * sampleSize, valid * sampleSize);
    const x = tf.tensor(chunk, [batch, ...sample], 'float32');
    const t0 = performance.now();
    let y = await execute(model, x);
    if (Array.isArray(y)) {
      y.slice(1).forEach((t) => t.dispose());
      y = y[0];
    }
    const values = await y.data();
    if (firstMs === null) firstMs = performance.now() - t0;
    outputSample = y.shape.slice(1);
    outputs.push(Float32Array.from(values.subarray(0, valid * (values.length / batch))));
    x.dispose();
    y.dispose();
  }
  const totalMs = performance.now() - inferStart;

  stage = 'bench';
  const latencies = args['bench-min-runs'] ? await benchmark(tf, model, input, sample, sampleSize, count, fixedBatch || 1, args) : null;

  const length = outputs.reduce((n, part) => n + part.length, 0);
  const result = new Float32Array(length);
  let offset = 0;
  for (const part of outputs) {
    result.set(part, offset);
    offset += part.length;
  }
  fs.writeFileSync(args.output, Buffer.from(result.buffer));
  writeResult({
    backend: tf.getBackend(),
    tfjs_version: tf.version.tfjs,
    node_version: process.versions.node,
    threads,
    batch,
    output_shape: [count, ...outputSample],
    ops: graphOps(args.model),
    timings_ms: { load: loadMs, first_inference: firstMs, inference_total: totalMs },
    latencies_ms: latencies,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  });
}

process.on('unhandledRejection', (reason) => {
  writeResult({ error: String((reason && reason.message) || reason), stage });
  process.exit(1);
});

main().catch((error) => {
  writeResult({ error: String((error && error.message) || error), stage });
  process.exit(1);
});
