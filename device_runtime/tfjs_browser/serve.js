// serve-bench's page: picks the backends this browser offers, runs each (artifact, backend) in a fresh frame
// (run.html, so no state leaks between runs), posts every result to the server and lists it.
'use strict';

const $ = (id) => document.getElementById(id);

function offered() {
  const canvas = document.createElement('canvas');
  return {
    wasm: typeof WebAssembly === 'object',
    webgl: Boolean(canvas.getContext('webgl2') || canvas.getContext('webgl')),
    webgpu: Boolean(navigator.gpu),
  };
}

function runInFrame(artifact, backend) {
  return new Promise((resolve) => {
    const frame = document.createElement('iframe');
    frame.style.display = 'none';
    const done = (event) => {
      if (event.source !== frame.contentWindow) return;
      window.removeEventListener('message', done);
      frame.remove();
      resolve(event.data);
    };
    window.addEventListener('message', done);
    frame.src = `run.html?artifact=${artifact}&backend=${backend}`;
    document.body.appendChild(frame);
  });
}

function line(text, failed) {
  const item = document.createElement('li');
  item.textContent = text;
  if (failed) item.className = 'failed';
  $('log').appendChild(item);
}

async function start(plan) {
  const device = $('device').value.trim();
  if (!device) {
    $('status').textContent = 'Name this device first.';
    return;
  }
  $('start').disabled = true;
  document.body.dataset.state = 'running';
  const backends = plan.backends.filter((b) => $(`backend-${b}`) && $(`backend-${b}`).checked);
  let stored = 0;
  for (const [index, artifact] of plan.artifacts.entries()) {
    for (const backend of backends) {
      $('status').textContent = `Running ${artifact.name} on ${backend}...`;
      const reply = await runInFrame(index, backend);
      if (reply.error) {
        line(`${artifact.name} / ${backend}: failed (${reply.error})`, true);
        continue;
      }
      const response = await fetch('result', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ...reply.result, artifact: index, backend, device }),
      });
      const answer = await response.json();
      if (!response.ok) {
        line(`${artifact.name} / ${backend}: not stored (${answer.error})`, true);
        continue;
      }
      stored += 1;
      const sorted = [...reply.result.latencies_ms].sort((a, b) => a - b);
      const p50 = sorted[Math.floor((sorted.length - 1) / 2)];
      line(`${artifact.name} / ${reply.result.info.backend}: p50 ${p50.toFixed(3)} ms over ${sorted.length} runs (row ${answer.stored})`);
    }
  }
  $('status').textContent = `Done: ${stored} result(s) stored.`;
  document.body.dataset.state = 'done';
  document.body.dataset.stored = String(stored);
}

async function main() {
  const plan = await (await fetch('plan.json')).json();
  const has = offered();
  for (const backend of plan.backends) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.id = `backend-${backend}`;
    box.checked = has[backend];
    box.disabled = !has[backend];
    label.append(box, ` ${backend}${has[backend] ? '' : ' (not offered by this browser)'}`);
    $('backends').appendChild(label);
  }
  for (const artifact of plan.artifacts) {
    const item = document.createElement('li');
    item.textContent = `${artifact.name}: ${artifact.samples} real samples`;
    $('artifacts').appendChild(item);
  }
  $('device').value = new URLSearchParams(location.search).get('device') || '';
  $('start').disabled = false;
  $('start').onclick = () => start(plan);
  document.body.dataset.state = 'ready';
}

main().catch((error) => {
  $('status').textContent = `Could not start: ${error}`;
  document.body.dataset.state = 'failed';
});
