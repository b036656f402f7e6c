#!/usr/bin/env node
// Runs a TF.js graph model (model.json + weight shards) from a local directory in Node.js,
// without network, on the `cpu` or `wasm` backend.
//
//   node run_graph_model.js --model DIR --backend cpu|wasm --feed FEED.json --out-dir DIR \
//        [--threads N] [--batch N] [--protocol JSON]
//
// FEED.json: {"inputs": [{"name", "dtype", "shape", "file"}, ...], "outputs": [names] or null}: one raw
// little-endian file per input (dtype float32, int32 or bool as one byte per value; file relative to
// FEED.json), named as the model's signature names them (null: the model's input at that position), and
// the outputs to return in that order (null: the model's own order). Outputs are written to DIR as
// output_<i>.bin in the same encoding. On success one JSON line goes to stdout (backend, versions,
// outputs with name, dtype, shape and file, graph ops, timings); on any failure one JSON line with
// "error" and "stage" (args, backend, load, input, run), and the exit status is 1. Everything else
// (TF.js notices) goes to stderr. A model whose first input has a fixed batch (models exported with
// batch 1) runs in chunks of that batch; otherwise --batch (default: all). With --protocol (the harness's
// Protocol as JSON), the feed's samples are then timed one batch at a time with that protocol
// (../tfjs_browser/protocol.js, shared with the page): latencies_ms per inference, inferences, bench_wall_ms.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const writeResult = (object) => fs.writeSync(1, JSON.stringify(object) + '\n');
// Keep stdout for the one JSON line: library chatter goes to stderr.
console.log = console.info = console.warn = console.error;

const BACKENDS = ['cpu', 'wasm'];
const ARRAYS = { float32: Float32Array, int32: Int32Array, bool: Uint8Array };
let stage = 'args';
const USAGE = 'usage: node run_graph_model.js --model DIR --backend cpu|wasm --feed FEED.json --out-dir DIR ' +
  '[--threads N] [--batch N] [--protocol JSON]';
const edgeProtocol = require(path.join(__dirname, '..', 'tfjs_browser', 'protocol.js'));

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    if (!key.startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`bad argument '${key}'; ${USAGE}`);
    }
    args[key.slice(2)] = argv[i + 1];
  }
  for (const required of ['model', 'backend', 'feed', 'out-dir']) {
    if (args[required] === undefined) throw new Error(`missing --${required}; ${USAGE}`);
  }
  if (!BACKENDS.includes(args.backend)) {
    throw new Error(`unknown backend '${args.backend}'; available: ${BACKENDS.join(', ')}`);
  }
  if (args.protocol !== undefined) {
    try {
      args.protocol = JSON.parse(args.protocol);
    } catch (error) {
      throw new Error(`--protocol is not JSON (${error.message}); ${USAGE}`);
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

/** The feed's inputs as {name, dtype, shape, sampleShape, count, data} with their values read from their files. */
function readFeed(feedFile) {
  if (os.endianness() !== 'LE') throw new Error('raw input files are little-endian; this host is big-endian');
  const feed = JSON.parse(fs.readFileSync(feedFile, 'utf8'));
  if (!Array.isArray(feed.inputs) || !feed.inputs.length) throw new Error(`${feedFile} lists no inputs`);
  const inputs = feed.inputs.map((input) => {
    const Type = ARRAYS[input.dtype];
    if (!Type) throw new Error(`input '${input.name}' has dtype ${input.dtype}; expected ${Object.keys(ARRAYS).join(', ')}`);
    const shape = input.shape.map(Number);
    if (!shape.length || shape.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new Error(`input '${input.name}' has shape [${input.shape}]; expected positive integers, batch first`);
    }
    const data = new Type(toArrayBuffer(fs.readFileSync(path.resolve(path.dirname(feedFile), input.file))));
    const expected = shape.reduce((a, b) => a * b, 1);
    if (data.length !== expected) {
      throw new Error(`${input.file} holds ${data.length} values but input '${input.name}' of shape [${shape}] needs ${expected}`);
    }
    const [count, ...sampleShape] = shape;
    return { name: input.name, dtype: input.dtype, count, sampleShape, sampleSize: expected / count, data };
  });
  if (new Set(inputs.map((input) => input.count)).size > 1) throw new Error('the inputs hold different numbers of samples');
  return { inputs, outputs: feed.outputs || undefined };
}

/** Rows [start, start + valid) of every input as tensors of `batch` rows (the last row repeated to fill it),
 * keyed by the model's input names (a null name takes the model's input at that position). */
function batchTensors(tf, model, inputs, start, valid, batch) {
  const named = {};
  inputs.forEach((input, i) => {
    const chunk = new ARRAYS[input.dtype](batch * input.sampleSize);
    const size = input.sampleSize;
    chunk.set(input.data.subarray(start * size, (start + valid) * size));
    for (let row = valid; row < batch; row++) chunk.copyWithin(row * size, (valid - 1) * size, valid * size);
    named[input.name ?? model.inputs[i].name] = tf.tensor(chunk, [batch, ...input.sampleShape], input.dtype);
  });
  return named;
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

/** `execute` (synchronous graphs), falling back to `executeAsync` for control flow / dynamic shapes; always a list. */
let needsAsync = false;
async function execute(model, feed, outputs) {
  if (!needsAsync) {
    try {
      const y = model.execute(feed, outputs);
      return Array.isArray(y) ? y : [y];
    } catch (error) {
      if (!/executeAsync/.test(String(error && error.message))) throw error;
      needsAsync = true;
    }
  }
  const y = await model.executeAsync(feed, outputs);
  return Array.isArray(y) ? y : [y];
}

/** One batch through the model: every output's values, dtype and shape (the output tensors disposed). */
async function runOnce(model, feed, outputs) {
  const ys = await execute(model, feed, outputs);
  const results = [];
  for (const y of ys) results.push({ values: await y.data(), dtype: y.dtype, shape: y.shape });
  ys.forEach((y) => y.dispose());
  return results;
}

/** The harness's protocol over one batch per inference, cycling over the real samples (protocol.js). */
async function benchmark(tf, model, feed, batch, protocol) {
  const count = feed.inputs[0].count;
  const batches = [];
  for (let start = 0; start + batch <= count; start += batch) batches.push(batchTensors(tf, model, feed.inputs, start, batch, batch));
  if (!batches.length) throw new Error(`the benchmark needs at least ${batch} samples (the model's batch), got ${count}`);
  try {
    return await edgeProtocol.timeSamples((i) => runOnce(model, batches[i % batches.length], feed.outputs), protocol);
  } finally {
    batches.forEach((named) => Object.values(named).forEach((t) => t.dispose()));
  }
}

/** Concatenated rows of each output over the chunks, written to DIR/output_<i>.bin; their descriptions. */
function writeOutputs(dir, names, parts, count) {
  return parts.map((chunks, i) => {
    const length = chunks.reduce((n, chunk) => n + chunk.values.length, 0);
    const values = new ARRAYS[chunks[0].dtype](length);
    chunks.reduce((offset, chunk) => (values.set(chunk.values, offset), offset + chunk.values.length), 0);
    const file = `output_${i}.bin`;
    fs.writeFileSync(path.join(dir, file), Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    return { name: names[i], dtype: chunks[0].dtype, shape: [count, ...chunks[0].shape.slice(1)], file };
  });
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
  const feed = readFeed(args.feed);
  if (feed.inputs.length !== model.inputs.length) {
    throw new Error(`the feed has ${feed.inputs.length} input(s) but the model takes ${model.inputs.length} ` +
      `(${model.inputs.map((t) => t.name).join(', ')})`);
  }
  const count = feed.inputs[0].count;
  const declared = model.inputs[0].shape;
  const fixedBatch = declared && declared[0] > 0 ? declared[0] : null;
  const batch = fixedBatch || args.batch || count;
  const names = feed.outputs || model.outputNodes;

  stage = 'run';
  const parts = names.map(() => []);
  let firstMs = null;
  const inferStart = performance.now();
  for (let start = 0; start < count; start += batch) {
    const valid = Math.min(batch, count - start);
    const named = batchTensors(tf, model, feed.inputs, start, valid, batch);
    const t0 = performance.now();
    const results = await runOnce(model, named, feed.outputs);
    if (firstMs === null) firstMs = performance.now() - t0;
    results.forEach((result, i) => parts[i].push({ ...result, values: result.values.subarray(0, valid * (result.values.length / batch)) }));
    Object.values(named).forEach((t) => t.dispose());
  }
  const totalMs = performance.now() - inferStart;

  stage = 'bench';
  const bench = args.protocol ? await benchmark(tf, model, feed, fixedBatch || 1, args.protocol) : null;

  const outputs = writeOutputs(args['out-dir'], names, parts, count);
  writeResult({
    backend: tf.getBackend(),
    tfjs_version: tf.version.tfjs,
    node_version: process.versions.node,
    threads,
    batch,
    outputs,
    ops: graphOps(args.model),
    timings_ms: { load: loadMs, first_inference: firstMs, inference_total: totalMs },
    latencies_ms: bench && bench.latencies_ms,
    inferences: bench && bench.inferences,
    bench_wall_ms: bench && bench.wall_ms,
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
