// The demo page: controls, charts and tables. The work happens in worker.js; this module
// only sends requests and draws the answers. Chart.js is loaded as a classic script
// (vendor/chart.umd.min.js) and used through its global.
//
// window.demo holds the last results for anyone curious (and for the browser test):
//   { ready, build, backend, analyses, last, model, conversions, converted, errors }
import { DISTRIBUTIONS, checkSpec } from './synth.js';

const Chart = globalThis.Chart;
const $ = (id) => document.getElementById(id);
const demo = (window.demo = { ready: false, build: null, backend: null, analyses: 0, last: null, model: null, conversions: 0, converted: null, errors: [] });

const COLORS = { orig: '#6b8fd6', origFill: 'rgba(107, 143, 214, 0.45)', deq: '#e0792b', accent: '#2f5fd0', grey: '#9aa3b2', soft: '#c9d3ea' };

// ------------------------------------------------------------------ formatting

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}
const grouped = (n) => n.toLocaleString('en-US');
function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (x === Infinity) return '∞';
  return x.toFixed(digits);
}
function fmtSci(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (x === 0) return '0';
  return x.toExponential(3);
}
const fmtPct = (x) => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)}%`);
const fmtMs = (x) => (x === undefined || x === null ? '–' : x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
const fmtBpw = (x) => (x === null || x === undefined ? '–' : String(Number(x.toFixed(4))));
const fmtSnr = (x) => (x === Infinity ? '∞ (exact)' : x === null || x === undefined ? '–' : `${x.toFixed(2)} dB`);

// ------------------------------------------------------------------ messages, progress

function showMessage(text, kind = 'error') {
  const m = $('message');
  m.textContent = text;
  m.className = kind === 'error' ? 'message' : 'message info';
  m.hidden = false;
  if (kind === 'error') demo.errors.push(text);
}
const clearMessage = () => ($('message').hidden = true);

// The button that started the running request shows its progress too (in a narrow window
// the progress bar may be out of sight).
let activeButton = null;

function setProgress(fraction, label) {
  const f = Math.max(0, Math.min(1, fraction));
  $('progress').value = f;
  $('progress-label').textContent = label;
  if (activeButton && busy) activeButton.textContent = `${activeButton.dataset.busyText} ${Math.round(100 * f)}%`;
}

// ------------------------------------------------------------------ the worker

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const pending = new Map();
let nextId = 1;
let busy = false;
let currentRequest = null;
const STOPPED = 'Conversion stopped.'; // the worker's answer to the Stop button

function request(type, payload = {}) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ type, id, ...payload });
  });
}

worker.onmessage = ({ data }) => {
  if (data.type === 'ready') return onReady(data);
  if (data.type === 'progress') return setProgress(data.fraction, data.label);
  const waiting = pending.get(data.id);
  if (data.type === 'error' && !waiting) {
    showMessage(data.message);
    setProgress(0, 'Not available.');
    document.body.dataset.state = 'error';
    return;
  }
  if (!waiting) return;
  pending.delete(data.id);
  if (data.type === 'error') waiting.reject(new Error(data.message));
  else waiting.resolve(data);
};
worker.onerror = (e) => {
  console.error('worker error', e.message);
  showMessage(`The worker stopped: ${e.message ?? 'unknown error'}`);
  document.body.dataset.state = 'error';
};

/** Runs one request with the controls locked; errors become the page's message. */
async function run(type, payload, label, button = null) {
  if (busy) {
    showMessage('Still working: wait for the current run to finish, then try again.', 'info');
    return null;
  }
  busy = true;
  activeButton = button;
  const idleText = button?.textContent;
  document.body.dataset.state = 'busy';
  lockControls(true);
  clearMessage();
  setProgress(0, label);
  const started = performance.now();
  try {
    const r = await request(type, payload);
    setProgress(1, `Done in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
    return r;
  } catch (e) {
    const stopped = e.message === STOPPED;
    showMessage(e.message, stopped ? 'info' : 'error');
    setProgress(0, stopped ? 'Stopped.' : 'Stopped: see the message below.');
    return null;
  } finally {
    busy = false;
    if (button) button.textContent = idleText;
    activeButton = null;
    lockControls(false);
    document.body.dataset.state = 'ready';
    if (replanLater) setTimeout(replan, 0);
  }
}

function lockControls(locked) {
  $('run').disabled = locked || !demo.ready;
  $('convert').disabled = locked || !demo.model || !!demo.model.plan.error;
  $('file').disabled = locked;
  $('folder').disabled = locked;
  $('workers').disabled = locked;
  $('stop').hidden = !(locked && currentRequest === 'convert');
  for (const b of document.querySelectorAll('#tensor-table button')) b.disabled = locked;
}

// ------------------------------------------------------------------ options and presets

const presetList = [];

function options() {
  const o = { layout: $('layout').value, rule: $('rule').value, scope: $('scope').value };
  if (o.scope === 'block') o.blockSize = Number($('blockSize').value);
  return o;
}

function syncPreset() {
  const o = options();
  const match = presetList.find(
    (p) => p.layout === o.layout && p.rule === o.rule && p.scope === o.scope && (o.scope !== 'block' || (p.blockSize ?? 256) === o.blockSize),
  );
  $('preset').value = match ? match.name : 'custom';
  $('preset-hint').textContent = match ? match.description : 'Your own combination of layout, rule and scope.';
  $('blockSize').disabled = o.scope !== 'block';
}

function applyPreset(name) {
  const p = presetList.find((x) => x.name === name);
  if (!p) return syncPreset();
  $('layout').value = p.layout;
  $('rule').value = p.rule;
  $('scope').value = p.scope;
  if (p.blockSize) $('blockSize').value = p.blockSize;
  syncPreset();
}

function onReady({ build, backend, presets }) {
  presetList.push(...presets);
  const select = $('preset');
  for (const p of presets) select.add(new Option(p.name, p.name), select.options[select.options.length - 1]);
  applyPreset('bitnet');
  demo.ready = true;
  demo.build = build;
  demo.backend = backend;
  $('backend').textContent = build === 'simd128' ? 'wasm SIMD128 build' : 'wasm scalar build (no SIMD128 here)';
  $('backend').title = `The worker runs the ${build} wasm build; its kernels report '${backend}'.`;
  document.body.dataset.state = 'ready';
  lockControls(false);
  setProgress(0, 'Ready.');
  runSynthetic(false);
}

// ------------------------------------------------------------------ synthetic runs

function spec() {
  return {
    distribution: $('distribution').value,
    rows: Number($('rows').value),
    cols: Number($('cols').value),
    seed: Number($('seed').value),
    dof: Number($('dof').value),
  };
}

async function runSynthetic(userAction = true) {
  const s = spec();
  const problem = checkSpec(s);
  if (problem) return showMessage(`Synthetic weights: ${problem}.`);
  if (s.distribution !== 'student-t') delete s.dof;
  currentRequest = 'synthetic';
  const r = await run('synthetic', { spec: s, options: options() }, 'Starting…', $('run'));
  if (r) {
    showAnalysis(r.result);
    // In one column the results are below the controls: bring them into view.
    if (userAction && matchMedia('(max-width: 760px)').matches) $('headline').scrollIntoView({ block: 'start' });
  }
}

$('controls').addEventListener('submit', (e) => {
  e.preventDefault();
  runSynthetic();
});
$('distribution').addEventListener('change', () => ($('dof').disabled = $('distribution').value !== 'student-t'));
$('preset').addEventListener('change', () => {
  applyPreset($('preset').value);
  replan();
});
for (const id of ['layout', 'rule', 'scope', 'blockSize']) {
  $(id).addEventListener('change', () => {
    syncPreset();
    replan();
  });
}

// ------------------------------------------------------------------ analysis views

function describeInput(label) {
  if (label.kind === 'synthetic') {
    const dof = label.distribution === 'student-t' ? ` (${label.dof} dof)` : '';
    return `${DISTRIBUTIONS[label.distribution]}${dof}, ${label.rows} × ${label.cols}, seed ${label.seed}`;
  }
  return `${label.name} (${label.dtype}, ${label.shape.join(' × ')})`;
}

function describeOptions(r) {
  const scope = r.scope === 'block' ? `per ${r.blockSize}-block` : `per ${r.scope}`;
  return `${r.layout}, ${r.options.rule ?? 'absmean'} ${scope}`;
}

function showAnalysis(r) {
  demo.analyses++;
  demo.last = r;
  const f32 = r.sizes.byLayout.f32;
  $('analysis-title').textContent = `${describeInput(r.label)} → ${describeOptions(r)}`;
  $('fig-bpw').textContent = fmtBpw(r.bitsPerWeight);
  $('fig-ratio').textContent = `${(f32 / r.byteLength).toFixed(1)}×`;
  $('fig-snr').textContent = r.stats.snrDb === Infinity ? '∞' : `${r.stats.snrDb.toFixed(2)} dB`;
  $('fig-cos').textContent = fmt(r.stats.cosine, 4);
  $('fig-zeros').textContent = fmtPct(r.zeroFraction);
  drawHistogram(r);
  drawSizes(r);
  drawRules(r);
  fillErrorTable(r);
  drawHeatmap('heat-weights', r.tile.weights, r.tile.rows, r.tile.cols);
  drawHeatmap('heat-error', r.tile.error, r.tile.rows, r.tile.cols);
  $('heat-note').textContent = `Rows 0–${r.tile.rows - 1}, columns 0–${r.tile.cols - 1}; blue is negative, red positive; each map's colours span ± its 99th percentile of |value|.`;
  drawScales(r);
  drawTimings(r);
}

const charts = {};
Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
Chart.defaults.font.size = 11;
Chart.defaults.color = '#5b6475';
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;

function chart(id, config) {
  charts[id]?.destroy();
  charts[id] = new Chart($(id), config);
}

const compact = (v) => (v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v));

function drawHistogram(r) {
  const h = r.histogram;
  const points = (counts) => counts.map((y, i) => ({ x: h.centres[i], y: y || null }));
  chart('chart-hist', {
    type: 'bar',
    data: {
      datasets: [
        { label: 'original', data: points(h.original), backgroundColor: COLORS.origFill, borderColor: COLORS.orig, borderWidth: 0, barPercentage: 1, categoryPercentage: 1, grouped: false, order: 2 },
        { label: 'dequantized', data: points(h.dequantized), backgroundColor: COLORS.deq, barPercentage: 0.45, categoryPercentage: 1, grouped: false, order: 1 },
      ],
    },
    options: {
      parsing: true,
      scales: {
        x: { type: 'linear', offset: false, min: -h.range, max: h.range, title: { display: true, text: 'value' }, ticks: { maxTicksLimit: 9, includeBounds: false, callback: (v) => Number(v.toPrecision(2)) } },
        y: { type: 'logarithmic', min: 0.8, title: { display: true, text: 'count (log scale)' }, ticks: { callback: (v) => (Math.log10(v) % 1 === 0 ? compact(v) : '') } },
      },
      plugins: {
        legend: { position: 'top', align: 'end', labels: { boxWidth: 12 } },
        tooltip: { callbacks: { title: (items) => `around ${Number(items[0].parsed.x.toPrecision(3))}`, label: (i) => `${i.dataset.label}: ${grouped(i.parsed.y)}` } },
      },
    },
  });
  const clipped = h.clipped ? ` ${grouped(h.clipped)} values beyond ±${Number(h.range.toPrecision(3))} are in the edge bins.` : '';
  $('hist-note').textContent = `${h.original.length} bins of ${Number(h.width.toPrecision(3))}. Dequantized values sit on −scale, 0 and +scale of each scope.${clipped}`;
}

/** SNR of every rule on the same weights, layout and scope; the chosen rule is the dark one. */
function drawRules(r) {
  const rules = r.byRule;
  const chosen = rules.findIndex((x) => x.rule === r.options.rule);
  const finite = rules.map((x) => (x.snrDb === Infinity ? null : x.snrDb)).filter((v) => v !== null);
  const top = finite.length ? Math.max(...finite) : 1;
  chart('chart-rules', {
    type: 'bar',
    data: {
      labels: rules.map((x) => x.rule),
      datasets: [{
        data: rules.map((x) => (x.snrDb === Infinity ? top * 1.2 : x.snrDb)),
        backgroundColor: rules.map((_, i) => (i === chosen ? COLORS.accent : COLORS.soft)),
        barPercentage: 0.75,
      }],
    },
    options: {
      indexAxis: 'y',
      layout: { padding: { right: 8 } },
      scales: { x: { display: false, min: 0, max: top * 1.36 }, y: { grid: { display: false }, ticks: { font: { weight: 600 } } } },
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (i) => `${fmt(rules[i.dataIndex].snrDb, 2)} dB` } } },
    },
    plugins: [barLabels((v, i) => `${rules[i].snrDb === Infinity ? '∞' : fmt(rules[i].snrDb, 2)} dB`)],
  });
  const best = rules.reduce((b, x) => (x.snrDb > b.snrDb ? x : b), rules[0]);
  $('rules-note').textContent =
    `SNR of the dequantized values, ${r.layout} with scope ${r.scope}, for each rule on these ${grouped(r.rows * r.cols)} weights. ` +
    `Best here: ${best.rule} (${fmt(best.snrDb, 2)} dB).`;
}

/** Bars of real bytes per format; the chosen layout is the dark one. */
function drawSizes(r) {
  const b = r.sizes.byLayout;
  // Only the formats that store rows of this length themselves (the engine says which).
  const held = ['f32', 'f16', ...(r.q8 ? ['q8_0'] : []), ...r.sizes.heldWhole];
  const bars = [
    ['f32', b.f32],
    ['f16', b.f16],
    ['q8_0', r.q8 ? r.q8.byteLength : null],
    ['tq2_0', b.tq2_0],
    ['tq1_0', b.tq1_0],
  ].filter(([name, v]) => v !== null && held.includes(name));
  const mine = bars.findIndex(([name]) => name === r.layout);
  if (mine >= 0) bars[mine][1] = r.byteLength;
  else bars.push([r.layout, r.byteLength]);
  const chosen = mine >= 0 ? mine : bars.length - 1;
  const max = Math.max(...bars.map(([, v]) => v));
  chart('chart-size', {
    type: 'bar',
    data: {
      labels: bars.map(([name]) => name),
      datasets: [{ data: bars.map(([, v]) => v), backgroundColor: bars.map((_, i) => (i === chosen ? COLORS.accent : COLORS.soft)), barPercentage: 0.75 }],
    },
    options: {
      indexAxis: 'y',
      layout: { padding: { right: 8 } },
      scales: {
        x: { display: false, min: 0, max: max * 1.36 },
        y: { grid: { display: false }, ticks: { font: { weight: 600 } } },
      },
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (i) => `${grouped(i.parsed.x)} bytes` } } },
    },
    plugins: [barLabels((v) => `${fmtBytes(v)} · ${(b.f32 / v).toFixed(1)}×`)],
  });
  const left = ['q8_0', 'tq2_0', 'tq1_0'].filter((name) => !held.includes(name));
  const missing = left.length ? ` Rows of ${r.cols} values are whole blocks of no ${left.join(' or ')}, so those bars are left out.` : '';
  $('size-note').textContent = `Exact stored bytes, scales included, for ${grouped(r.rows * r.cols)} weights; × is the reduction from f32. ${r.layout}: ${grouped(r.byteLength)} bytes.${missing}`;
}

/** A Chart.js plugin that writes each bar's value at its end. */
function barLabels(text) {
  return {
    id: 'barLabels',
    afterDatasetsDraw(c) {
      const { ctx } = c;
      ctx.save();
      ctx.font = `11px ${Chart.defaults.font.family}`;
      ctx.textBaseline = 'middle';
      c.getDatasetMeta(0).data.forEach((bar, i) => {
        const label = text(c.data.datasets[0].data[i], i);
        const width = ctx.measureText(label).width;
        // Outside the bar where it fits, else inside its end.
        if (bar.x + 5 + width <= c.chartArea.right) {
          ctx.fillStyle = '#1d2330';
          ctx.textAlign = 'left';
          ctx.fillText(label, bar.x + 5, bar.y);
        } else {
          const bg = c.data.datasets[0].backgroundColor;
          ctx.fillStyle = (Array.isArray(bg) ? bg[i] : bg) === COLORS.accent ? '#fff' : '#1d2330';
          ctx.textAlign = 'right';
          ctx.fillText(label, bar.x - 5, bar.y);
        }
      });
      ctx.restore();
    },
  };
}

function fillErrorTable(r) {
  $('error-col').textContent = `ternary (${r.layout})`;
  const t = r.stats;
  const q = r.q8?.stats;
  const rows = [
    ['MSE', fmtSci(t.mse), fmtSci(q?.mse)],
    ['RMSE', fmtSci(t.rmse), fmtSci(q?.rmse)],
    ['max |error|', fmtSci(t.maxAbsError), fmtSci(q?.maxAbsError)],
    ['SNR', fmtSnr(t.snrDb), q ? fmtSnr(q.snrDb) : '–'],
    ['cosine', fmt(t.cosine, 5), q ? fmt(q.cosine, 5) : '–'],
    ['zeros', fmtPct(r.zeroFraction), '–'],
    ['bytes', grouped(r.byteLength), r.q8 ? grouped(r.q8.byteLength) : '–'],
    ['bits / weight', fmtBpw(r.bitsPerWeight), r.q8 ? fmtBpw((8 * r.q8.byteLength) / (r.rows * r.cols)) : '–'],
  ];
  const body = $('error-table').tBodies[0];
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement('tr');
      tr.dataset.metric = cells[0];
      for (const c of cells) tr.insertCell().textContent = c;
      return tr;
    }),
  );
}

// Diverging colour map: the stops of the CSS .scale-bar gradient.
const STOPS = [[0x21, 0x66, 0xac], [0x92, 0xc5, 0xde], [0xf7, 0xf7, 0xf7], [0xf4, 0xa5, 0x82], [0xb2, 0x18, 0x2b]];
function diverging(t) {
  const x = (Math.max(-1, Math.min(1, t)) + 1) * 2;
  const i = Math.min(3, Math.floor(x));
  const f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
}

/** Draws a tile in the diverging map; the colours span ± the 99th percentile of |value| (beyond it they saturate). */
function drawHeatmap(id, values, rows, cols) {
  const canvas = $(id);
  canvas.width = cols;
  canvas.height = rows;
  canvas.style.aspectRatio = `${cols} / ${rows}`;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(cols, rows);
  const sorted = Float32Array.from(values, Math.abs).sort();
  const top = sorted.length ? sorted[sorted.length - 1] : 0;
  // The 99th percentile, or the largest |value| when that is 0 (nearly all zero).
  const m = sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] || top;
  for (let i = 0; i < values.length; i++) {
    const [r, g, b] = diverging(m ? values[i] / m : 0);
    img.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  const range = $(`${id}-range`);
  const label = (v) => (v === 0 ? '0' : Number(v.toPrecision(2)).toString());
  const ends = m === 0 ? ['', 'all zero', ''] : [-m, 0, m].map(label);
  range.replaceChildren(...ends.map((text) => Object.assign(document.createElement('span'), { textContent: text })));
}

function drawScales(r) {
  const s = r.scales;
  const where = r.scope === 'block' ? `one per ${r.blockSize} values` : r.scope === 'row' ? 'one per row' : 'one for the tensor';
  $('chart-scales').parentElement.hidden = s.distinct === 1;
  if (s.distinct === 1) {
    charts['chart-scales']?.destroy();
    delete charts['chart-scales'];
    const n = s.count > 1 ? `All ${grouped(s.count)} scales (${where}) are equal` : `One scale (${where})`;
    $('scale-note').replaceChildren(`${n}: `, Object.assign(document.createElement('strong'), { className: 'big', textContent: String(Number(s.min.toPrecision(5))) }));
    return;
  }
  chart('chart-scales', {
    type: 'bar',
    data: { datasets: [{ data: s.counts.map((y, i) => ({ x: s.centres[i], y })), backgroundColor: COLORS.accent, barPercentage: 1, categoryPercentage: 1 }] },
    options: {
      scales: {
        x: { type: 'linear', offset: false, min: s.min, max: s.max, title: { display: true, text: 'scale' }, ticks: { maxTicksLimit: 6, callback: (v) => Number(v.toPrecision(3)) } },
        y: { title: { display: true, text: 'count' }, ticks: { precision: 0 } },
      },
      plugins: { legend: { display: false } },
    },
  });
  const distinct = s.count > 65536 ? '' : `, ${grouped(s.distinct)} distinct`;
  $('scale-note').textContent = `${grouped(s.count)} scales (${where}${distinct}): min ${Number(s.min.toPrecision(4))}, mean ${Number(s.mean.toPrecision(4))}, max ${Number(s.max.toPrecision(4))}.`;
}

function drawTimings(r) {
  const t = r.timings;
  const rows = [['quantize', t.quantize], ['ternary GEMV', t.ternaryGemv], ['f32 GEMV', t.f32Gemv]];
  const color = { simd128: COLORS.accent, scalar: COLORS.grey };
  chart('chart-time', {
    type: 'bar',
    data: {
      labels: rows.map(([name]) => name),
      datasets: t.builds.map((b) => ({ label: b === 'simd128' ? 'SIMD128 build' : 'scalar build', data: rows.map(([, v]) => v[b]), backgroundColor: color[b] })),
    },
    options: {
      indexAxis: 'y',
      scales: { x: { title: { display: true, text: 'ms per call (less is better)' }, min: 0 }, y: { grid: { display: false } } },
      plugins: { legend: { position: 'top', align: 'end', labels: { boxWidth: 12 } }, tooltip: { callbacks: { label: (i) => `${i.dataset.label}: ${fmtMs(i.parsed.x)} ms` } } },
    },
  });
  const body = $('time-table').tBodies[0];
  body.replaceChildren(
    ...rows.map(([name, v]) => {
      const tr = document.createElement('tr');
      const speedup = v.simd128 && v.scalar ? `${(v.scalar / v.simd128).toFixed(1)}×` : '–';
      for (const c of [name, fmtMs(v.simd128), fmtMs(v.scalar), speedup]) tr.insertCell().textContent = c;
      return tr;
    }),
  );
  const best = t.builds[0];
  const gemv = t.f32Gemv[best] / t.ternaryGemv[best];
  const same = t.sameBytes ? 'Both builds give the same bytes.' : 'The builds gave different bytes!';
  $('time-note').textContent =
    `Median of batches of calls on ${r.rows} × ${r.cols}, the builds taking turns. GEMV is y = W·x for one vector; the ternary one quantizes x to int8 first. ` +
    `Ternary GEMV vs f32 GEMV (${best === 'simd128' ? 'SIMD128' : 'scalar'} build): ${gemv >= 1 ? `${gemv.toFixed(1)}× faster` : `${(1 / gemv).toFixed(1)}× slower`}. ` +
    `Kernels: ${t.builds.map((b) => `${b} build → ${t.kernels[b]}`).join(', ')}. ${same}`;
}

// ------------------------------------------------------------------ model files

/** Opens one model file, or the files of a Hugging Face model folder. */
async function openFiles(files) {
  if (files.length === 0) return;
  if (!demo.ready) return showMessage('The WebAssembly module is still loading; try again in a moment.');
  currentRequest = 'open';
  const what = files.length === 1 ? files[0].name : `a model folder (${files.length} files)`;
  const r = await run('open', { files, options: options() }, `Opening ${what}`);
  if (!r) return;
  demo.model = { summary: r.summary, plan: r.plan };
  demo.converted = null;
  $('download').hidden = true;
  $('file-card').hidden = false;
  renderModel();
  lockControls(false);
  $('file-card').scrollIntoView({ block: 'nearest' });
}

// Options changed while the worker was busy: plan again once it is free.
let replanLater = false;

async function replan() {
  if (!demo.model) return;
  if (busy) {
    replanLater = true;
    return;
  }
  replanLater = false;
  currentRequest = 'plan';
  const r = await run('plan', { options: options() }, 'Planning the conversion');
  if (!r) return;
  demo.model.plan = r.plan;
  demo.converted = null;
  $('download').hidden = true;
  renderModel();
  lockControls(false);
}

function renderModel() {
  const { summary: s, plan } = demo.model;
  const arch = s.architecture ? `, ${s.architecture}` : '';
  const version = s.version ? ` v${s.version}` : '';
  const out = plan.error
    ? ''
    : ` → ${plan.output === 'gguf' ? 'GGUF' : 'bitnet-hf safetensors'} of ${fmtBytes(plan.outputSize)} (${(s.size / plan.outputSize).toFixed(1)}× smaller)`;
  const done = demo.converted ? ` Converted in ${fmtMs(demo.converted.ms)} ms ${onWorkers(demo.converted)}.` : ' Press Convert to convert it tensor by tensor.';
  $('model-summary').textContent = `${s.name}: ${s.format}${version}${arch}, ${s.tensors.length} tensors, ${fmtBytes(s.size)}${out}.${plan.error ? '' : done}`;
  const converted = demo.converted;
  const byName = new Map(s.tensors.map((t, i) => [t.name, { ...t, index: i }]));
  const statsByName = new Map((converted?.rows ?? []).map((row) => [row.name, row]));
  const ops = plan.error ? s.tensors.map((t) => ({ name: t.name, inType: t.dtype, shape: t.shape, inputLength: t.byteLength })) : plan.ops;

  const notes = [];
  if (plan.error) notes.push(`Cannot convert with these options: ${plan.error}`);
  if (converted?.warning) notes.push(`Warning: ${converted.warning}.`);
  const fallbacks = plan.error ? [] : plan.ops.filter((o) => o.fallbackReason);
  for (const o of fallbacks.slice(0, 4)) notes.push(`${o.name}: ${o.fallbackReason}${o.kind === 'copy' ? ' (copied unchanged)' : ''}.`);
  if (fallbacks.length > 4) notes.push(`…and ${fallbacks.length - 4} more tensors that are not ternarised (see the Out column).`);
  const note = $('model-notes');
  note.hidden = notes.length === 0;
  note.replaceChildren(...notes.flatMap((n, i) => (i ? [document.createElement('br'), n] : [n])));

  const body = $('tensor-table').tBodies[0];
  body.replaceChildren(
    ...ops.map((o) => {
      const tr = document.createElement('tr');
      const info = byName.get(o.name);
      const st = statsByName.get(o.name);
      const stats = st?.stats;
      if (o.fallbackReason) tr.className = o.kind === 'copy' ? 'kept' : 'fallback';
      tr.dataset.name = o.name;
      const cell = (text, title) => {
        const td = tr.insertCell();
        td.textContent = text;
        if (title) td.title = title;
        return td;
      };
      // Long names may wrap after each dot.
      const name = tr.insertCell();
      name.title = o.name;
      o.name.split(/(?<=\.)/).forEach((part, i) => name.append(...(i ? [document.createElement('wbr'), part] : [part])));
      cell(o.shape.join(' × '));
      cell(o.outType ? (o.outType === o.inType ? o.inType : `${o.inType} → ${o.outType}`) : o.inType, o.fallbackReason ?? undefined).className = 'type';
      cell(fmtBytes(o.inputLength), `${grouped(o.inputLength)} bytes`);
      cell(o.outputLength === undefined ? '–' : fmtBytes(o.outputLength), o.outputLength === undefined ? undefined : `${grouped(o.outputLength)} bytes`);
      cell(o.bitsPerWeight === undefined ? '–' : fmtBpw(o.bitsPerWeight));
      if (stats) {
        cell(fmt(stats.snrDb, 2));
        cell(fmt(stats.outputSnrDb, 2), 'SNR of y = W x for a fixed standard Gaussian probe x: what the error does to the layer output');
        cell(fmt(stats.cosine, 4));
        cell(stats.zeroFraction != null ? fmtPct(stats.zeroFraction) : '–');
      } else {
        cell(st ? 'copied' : '').className = 'tag';
        cell('');
        cell('');
        cell('');
      }
      cell(st ? fmtMs(st.ms) : '');
      const td = tr.insertCell();
      if (info && ['F32', 'F16', 'BF16'].includes(info.dtype) && info.shape.length >= 2) {
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = 'view';
        b.title = `Quantize ${o.name} with the options on the left and show it in the views below`;
        b.addEventListener('click', () => viewTensor(info.index, o.name));
        td.append(b);
      }
      return tr;
    }),
  );

  const foot = $('tensor-table').tFoot;
  foot.replaceChildren();
  if (!plan.error) {
    const values = ops.reduce((n, o) => n + o.shape.reduce((a, b) => a * b, 1), 0);
    const bytesIn = ops.reduce((n, o) => n + o.inputLength, 0);
    const bytesOut = ops.reduce((n, o) => n + o.outputLength, 0);
    const tr = foot.insertRow();
    const cells = [
      `Total (${ops.length} tensors)`,
      '',
      `${(bytesIn / bytesOut).toFixed(2)}× smaller`,
      fmtBytes(bytesIn),
      fmtBytes(bytesOut),
      fmtBpw((8 * bytesOut) / values),
      '',
      '',
      '',
      '',
      converted ? fmtMs(converted.ms) : '',
      '',
    ];
    for (const c of cells) tr.insertCell().textContent = c;
    tr.cells[3].title = `${grouped(bytesIn)} bytes of tensor data`;
    tr.cells[4].title = `${grouped(bytesOut)} bytes of tensor data`;
  }
}

async function viewTensor(index, name) {
  currentRequest = 'tensor';
  const r = await run('tensor', { index, options: options() }, `Reading ${name}`);
  if (r) {
    showAnalysis(r.result);
    $('headline').scrollIntoView({ block: 'start', behavior: 'smooth' });
  }
}

// ------------------------------------------------------------------ conversion workers

// More workers than cores only take turns, and each worker holds its own wasm memory:
// hence at most 4 by default.
const DEFAULT_WORKERS = Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4));
$('workers').value = String(DEFAULT_WORKERS);
$('workers-hint').textContent =
  `Each worker has its own WebAssembly instance, whose memory holds the tensors it converts, so n workers take up to n times the memory of one. ` +
  `With 1, the page's own worker converts alone. This device reports ${navigator.hardwareConcurrency || 'an unknown number of'} logical cores.`;

/** "on 1 worker", "on 2 workers", and how many were asked when there was less to do. */
function onWorkers({ workers, workersAsked }) {
  const n = `on ${workers} worker${workers === 1 ? '' : 's'}`;
  return workersAsked > workers ? `${n} (${workersAsked} asked; no more tensors to share out)` : n;
}

async function convert() {
  currentRequest = 'convert';
  const r = await run('convert', { options: options(), workers: Number($('workers').value) }, 'Converting', $('convert'));
  currentRequest = null;
  lockControls(false);
  if (!r) return;
  const c = r.result;
  demo.conversions++;
  demo.model.plan = c.plan;
  demo.converted = {
    rows: c.rows,
    outputSize: c.outputSize,
    inputSize: c.inputSize,
    ms: c.ms,
    workers: c.workers,
    workersAsked: c.workersAsked,
    workersReadyMs: c.workersReadyMs,
    fileName: c.fileName,
    output: c.output,
    warning: c.warning ?? null,
  };
  renderModel();
  const a = $('download');
  if (a.href) URL.revokeObjectURL(a.href);
  a.href = URL.createObjectURL(c.blob);
  a.download = c.fileName;
  a.textContent = `Download ${c.fileName} (${fmtBytes(c.outputSize)})`;
  a.className = 'button primary';
  a.hidden = false;
  setProgress(1, `Converted ${c.rows.length} tensors in ${fmtMs(c.ms)} ms ${onWorkers(c)}.`);
}

$('convert').addEventListener('click', convert);
$('stop').addEventListener('click', () => worker.postMessage({ type: 'cancel' }));
for (const id of ['file', 'folder']) {
  $(id).addEventListener('change', (e) => {
    openFiles([...e.target.files]);
    e.target.value = '';
  });
}

/** The files of a dropped folder (its top level: where config.json and the weights are). */
function filesOfDirectory(entry) {
  return new Promise((resolve, reject) => {
    const reader = entry.createReader();
    const entries = [];
    const more = () =>
      reader.readEntries((batch) => {
        if (batch.length === 0) {
          const files = entries.filter((e) => e.isFile);
          Promise.all(files.map((f) => new Promise((ok, fail) => f.file(ok, fail)))).then(resolve, reject);
        } else {
          entries.push(...batch);
          more();
        }
      }, reject);
    more();
  });
}

// Dropping anywhere on the page opens the file (and never navigates away).
const drop = $('drop');
window.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
window.addEventListener('dragleave', (e) => {
  if (e.relatedTarget === null) drop.classList.remove('over');
});
window.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const entries = [...(e.dataTransfer?.items ?? [])].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  const folder = entries.length === 1 && entries[0].isDirectory ? entries[0] : null;
  if (folder) filesOfDirectory(folder).then(openFiles, (err) => showMessage(`Could not read the folder ${folder.name}: ${err.message}`));
  else openFiles([...(e.dataTransfer?.files ?? [])]);
});
