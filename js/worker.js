// A conversion worker (worker_threads) for `ternary-quant convert --threads N`: its own
// wasm instance, its own read-only input handles and its own handle on OUT.partial. It
// plans the same conversion from the same header bytes, then runs the ops it is sent
// and writes them at their planned offsets.
import { parentPort, workerData } from 'node:worker_threads';
import { open } from 'node:fs/promises';
import { init, planConversion } from './index.js';
import { OpRunner, closeInputs, openInput } from './convert.js';

const { inputs: inputList, prefixes, planOptions, partialPath, measure } = workerData;

let plan;
let inputs = [];
let out;
let runner;
let pendingBytes = 0;
let lastReport = 0;

function flushBytes(force) {
  const now = Date.now();
  if (pendingBytes > 0 && (force || now - lastReport > 100)) {
    parentPort.postMessage({ type: 'bytes', bytes: pendingBytes });
    pendingBytes = 0;
    lastReport = now;
  }
}

async function start() {
  await init({ modelFiles: true });
  for (const { path, name } of inputList) inputs.push(await openInput(path, name));
  const result = planConversion(
    inputs.map((input, i) => ({ prefix: prefixes[i], fileSize: input.size, name: input.name })),
    planOptions,
  );
  if (result.needBytes !== undefined) throw new Error('the worker could not plan from the header bytes it was given');
  plan = result;
  out = await open(partialPath, 'r+');
  runner = new OpRunner(plan, plan.ops(), inputs, out, {
    measure,
    onBytes: (n) => {
      pendingBytes += n;
      flushBytes(false);
    },
  });
  return { opCount: plan.opCount, outputSize: plan.outputSize };
}

async function stop() {
  await out?.close().catch(() => {});
  await closeInputs(inputs);
  plan?.free();
  inputs = [];
}

parentPort.on('message', async (message) => {
  try {
    if (message.type === 'op') {
      const result = await runner.run(message.index);
      flushBytes(true);
      parentPort.postMessage({ type: 'done', result });
    } else if (message.type === 'stop') {
      await stop();
      parentPort.postMessage({ type: 'stopped' });
    }
  } catch (e) {
    parentPort.postMessage({ type: 'error', message: e?.message ?? String(e) });
  }
});

start().then(
  (info) => parentPort.postMessage({ type: 'ready', ...info }),
  (e) => parentPort.postMessage({ type: 'error', message: e?.message ?? String(e) }),
);
