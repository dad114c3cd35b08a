#!/usr/bin/env node
// Writes the sample model: a small transformer-shaped F32 safetensors file, the same
// bytes on every run (seeded PRNG). Usage: node scripts/sample-model.mjs OUT.safetensors
import { writeFileSync } from 'node:fs';

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: node scripts/sample-model.mjs OUT.safetensors\n');
  process.exit(2);
}

// xorshift32 + Box-Muller: deterministic across machines (only IEEE double ops).
let state = 0x9e3779b9;
function uniform() {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return (state + 0.5) / 2 ** 32;
}
function gaussian() {
  return Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}
function laplace() {
  const u = uniform() - 0.5;
  return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
}

const hidden = 256;
const vocab = 1000;
const tensors = [];
function add(name, shape, fill) {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = fill(i);
  tensors.push({ name, shape, data });
}

add('model.embed_tokens.weight', [vocab, hidden], () => 0.02 * gaussian());
for (let layer = 0; layer < 2; layer++) {
  // The second layer's MLP is 384 wide: rows that no 256-value block fits (Q8_0 fallback).
  const inter = layer === 0 ? 768 : 384;
  const p = `model.layers.${layer}`;
  add(`${p}.input_layernorm.weight`, [hidden], () => 1 + 0.05 * gaussian());
  for (const proj of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) {
    add(`${p}.self_attn.${proj}.weight`, [hidden, hidden], () => 0.03 * gaussian());
  }
  add(`${p}.post_attention_layernorm.weight`, [hidden], () => 1 + 0.05 * gaussian());
  add(`${p}.mlp.gate_proj.weight`, [inter, hidden], () => 0.02 * laplace());
  add(`${p}.mlp.up_proj.weight`, [inter, hidden], () => 0.02 * laplace());
  add(`${p}.mlp.down_proj.weight`, [hidden, inter], () => 0.02 * gaussian());
}
add('model.norm.weight', [hidden], () => 1 + 0.05 * gaussian());
add('lm_head.weight', [vocab, hidden], () => 0.02 * gaussian());

const header = { __metadata__: { format: 'pt', source: 'ternary-quant sample model' } };
let offset = 0;
for (const t of tensors) {
  header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
  offset += t.data.byteLength;
}
let json = JSON.stringify(header);
json += ' '.repeat((8 - (json.length % 8)) % 8);
const headerBytes = Buffer.from(json, 'utf8');
const file = Buffer.alloc(8 + headerBytes.length + offset);
file.writeBigUInt64LE(BigInt(headerBytes.length), 0);
headerBytes.copy(file, 8);
let at = 8 + headerBytes.length;
for (const t of tensors) {
  Buffer.from(t.data.buffer).copy(file, at);
  at += t.data.byteLength;
}
writeFileSync(out, file);
process.stdout.write(`sample model: ${tensors.length} tensors, ${file.length} bytes -> ${out}\n`);
