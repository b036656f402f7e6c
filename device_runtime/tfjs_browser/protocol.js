// The harness's timing protocol for the TF.js runners, in Node.js (run_graph_model.js) and in the page
// (runner.js): the same rules as device_runtime/device_scripts/edge_bench.py (Protocol, time_runs,
// steadiness), kept in step with it by tests/device_runtime/test_tfjs_protocol.py.
//
//   edgeProtocol.timeSamples(run, protocol, {now, deadline}) -> {latencies_ms, inferences, wall_ms}
//   edgeProtocol.steadiness(samples_ms, blocks, tolerance)   -> {unsteady, block_medians_ms, block_spread}
//
// `protocol` is the Python Protocol as a dict (warmup_runs, min_runs, min_duration_s, max_runs, min_sample_ms,
// steady_blocks, steady_tolerance, steady_extension); a sample is as many back-to-back inferences as fill
// min_sample_ms, and its latency is the sample's time / its inference count.
(function (root, factory) {
  const api = factory();
  if (typeof module === 'object' && module.exports) module.exports = api;
  else root.edgeProtocol = api;
}(typeof self !== 'undefined' ? self : this, () => {
  'use strict';

  const DEFAULTS = {
    warmup_runs: 10, min_runs: 100, min_duration_s: 2.0, max_runs: 100000, min_sample_ms: 0,
    steady_blocks: 4, steady_tolerance: 0.10, steady_extension: 3.0,
  };

  function median(values) {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  }

  /** Medians of `blocks` consecutive blocks and their spread as a fraction of the overall median; unsteady is
   * null where it cannot be judged (check off, fewer than 2 samples a block). */
  function steadiness(samples, blocks, tolerance) {
    if (blocks < 2 || samples.length < 2 * blocks) return { unsteady: null, block_medians_ms: null, block_spread: null };
    const bounds = [];
    for (let i = 0; i <= blocks; i++) bounds.push(Math.floor((i * samples.length) / blocks));
    const medians = [];
    for (let i = 0; i < blocks; i++) medians.push(median(samples.slice(bounds[i], bounds[i + 1])));
    const overall = median(samples);
    const spread = overall > 0 ? (Math.max(...medians) - Math.min(...medians)) / overall : 0;
    return { unsteady: spread > tolerance, block_medians_ms: medians, block_spread: spread };
  }

  /** Warm-up, then timed samples of `await run(i)` (i counts inferences) until the minimum is met and the run
   * is steady or its extension is used up. `now()` is in ms; past `deadline` (ms) it throws an error with
   * `timeout: true`. */
  async function timeSamples(run, given, { now = () => performance.now(), deadline = Infinity } = {}) {
    const p = { ...DEFAULTS, ...given };
    for (let i = 0; i < p.warmup_runs; i++) await run(i);
    const latencies = [];
    let calls = 0;
    let limitMs = null;
    let nextCheck = null;
    const started = now();
    while (latencies.length < p.max_runs) {
      const t0 = now();
      let inSample = 0;
      let elapsedMs;
      do {
        await run(calls + inSample);
        inSample += 1;
        elapsedMs = now() - t0;
      } while (elapsedMs < p.min_sample_ms);
      calls += inSample;
      latencies.push(elapsedMs / inSample);
      const runs = latencies.length;
      const wallMs = now() - started;
      if (now() > deadline) {
        const error = new Error(`benchmark passed its time limit after ${runs} samples`);
        error.timeout = true;
        throw error;
      }
      if (runs < p.min_runs || wallMs < p.min_duration_s * 1000 || (nextCheck && runs < nextCheck)) continue;
      if (!steadiness(latencies, p.steady_blocks, p.steady_tolerance).unsteady) break;
      if (limitMs === null) limitMs = wallMs * p.steady_extension;
      if (wallMs >= limitMs) break;
      nextCheck = runs + Math.max(p.steady_blocks, Math.floor(runs / 4));
    }
    return { latencies_ms: latencies, inferences: calls, wall_ms: now() - started };
  }

  return { DEFAULTS, median, steadiness, timeSamples };
}));
