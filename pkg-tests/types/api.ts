// Every export of the package used as the README shows it; `tsc --noEmit --strict`
// checks it against index.d.ts (pkg-tests/types.test.mjs). It is type-checked, not run.
import * as tq from 'ternary-quant';
import type { BatchReport, ErrorStats, Int8Tensor, ModelInfo, NeedBytes, SizeEstimate, TensorStats, TernaryTensor } from 'ternary-quant';

const { backend, ConversionPlan, errorStats, estimateModelSize, init, inspectModel, loadBuild, matVecF32 } = tq;
const { decodeFloats, folderFiles, folderWeights, formats, memoryBytes, ternaryFitWarning, parseSafetensorsIndex, planConversion, presets, QuantizationEngine, quantizeBatch } = tq;
const { F32Buffer, quantizeInt8, quantizeTernary, relaxedSupported, simdSupported, ternaryMatVec } = tq;

const info: { backend: 'relaxed-simd' | 'simd128' | 'scalar'; modelFiles: boolean } = await init({ simd: simdSupported(), relaxed: relaxedSupported() });
const name: string = info.backend + backend() + memoryBytes();

const rows = 4;
const cols = 256;
const w = new Float32Array(rows * cols);
const x = new Float32Array(cols);

const t: TernaryTensor = quantizeTernary(w, rows, cols, { preset: 'bitnet', layout: 'tq1_0', rule: 'absmax', scope: 'block', blockSize: 256 });
const input = new F32Buffer(rows * cols);
const view: Float32Array = input.view();
view.set(w);
input.set(w, 0);
const fromBuffer: TernaryTensor = quantizeTernary(input, rows, cols, { preset: 'best' });
const copied: number = F32Buffer.from(w).length + matVecF32(input, rows, cols, x).length + fromBuffer.rows;
input.free();
const bytes: Uint8Array = t.bytes;
const scales: Float32Array = t.scales;
const codes: Int8Array = t.codes();
const approx: Float32Array = t.dequantize();
const bits: number = t.bitsPerWeight + t.byteLength + t.rows + t.cols + (t.blockSize ?? 0);
const layoutName: string = t.layout + t.scope;
const stats: ErrorStats = errorStats(w, approx);
const y: Float32Array = ternaryMatVec(t, x);
const yRef: Float32Array = matVecF32(w, rows, cols, x);
t.free();

const a: Int8Tensor = quantizeInt8(w, rows, cols, { layout: 'q8_0', scope: 'block', blockSize: 32, symmetric: true });
const values: Int8Array = a.values;
const zeroPoints: Int32Array = a.zeroPoints;
const aBytes: Uint8Array = a.bytes;
const aBack: Float32Array = a.dequantize();
a.free();
quantizeInt8(w, rows, cols, { layout: 'plain', scope: 'row', symmetric: false, clip: 3, percentile: 99.9 }).free();

const engine = new QuantizationEngine({ preset: 'lossless', activations: { layout: 'q8_k' } });
engine.quantizeWeights(w, rows, cols).free();
engine.quantizeActivations(x, 1, cols).free();
const measured: { tensor: TernaryTensor; stats: ErrorStats } = engine.quantizeAndMeasure(w, rows, cols);
measured.tensor.free();
const cache: number = engine.cacheStats().hits + engine.cacheStats().bytes;
engine.clearCache();
engine.free();

const batch = quantizeBatch({ 'blk.0.attn_q.weight': { data: w, rows, cols } }, { preset: 'compact' });
const report: BatchReport = batch.report;
for (const tensor of batch.tensors.values()) tensor.free();
const fromMap = quantizeBatch(new Map([['a', { data: w, rows, cols }]]));
fromMap.tensors.get('a')?.free();

const size: SizeEstimate = estimateModelSize([[4096, 4096], [11008, 4096]], { layout: 'tq2_0' });
const sizeByName: SizeEstimate = estimateModelSize({ q: [4096, 4096] });
const tq1Bytes: number = size.byLayout.tq1_0 + size.byLayout.f16 + sizeByName.bytes;
const storedAs: 'ternary' | 'q8_0' | 'f16' = size.storedAs[0];

const bitnetPreset: string = presets.bitnet.layout + presets.accurate.rule + tq.rules.join();

const scalar = await loadBuild({ simd: false });
scalar.quantizeTernary(w, rows, cols).free();
const withFiles = await loadBuild({ simd: false, modelFiles: true });
const engine2 = new withFiles.QuantizationEngine();
engine2.free();

await init({ modelFiles: true });
const prefix = new Uint8Array(1024);
const described: ModelInfo | NeedBytes = inspectModel(prefix, 4096);
if ('needBytes' in described) {
  const more: number = described.needBytes;
} else {
  const first: string = described.tensors[0].name + described.format;
}
const tq2: tq.FormatInfo | undefined = formats().find((f) => f.name === 'tq2_0');
const tq2Bytes: number = (tq2?.blockBytes ?? 0) + (tq2?.fileType ?? 0) + withFiles.formats().length;
const index = parseSafetensorsIndex(new TextEncoder().encode('{"weight_map": {}}'));
const shardFiles: string[] = index.files;
const planned = planConversion([{ prefix, fileSize: 4096, name: 'model.safetensors' }], {
  output: 'gguf',
  layout: 'tq2_0',
  rule: 'absmean',
  scope: 'tensor',
  forceKeep: ['lm_head.weight'],
  forceTernary: [],
  bitnetScale: 'multiply',
});
const folder = planConversion([{ prefix, fileSize: 4096 }], {
  model: { name: 'tiny', config: prefix, tokenizerJson: prefix, tokenizerConfig: prefix },
});
if (planned instanceof ConversionPlan) {
  const header: Uint8Array = planned.header;
  for (const op of planned.ops()) {
    const input = new Uint8Array(op.inputLength);
    const out: { bytes: Uint8Array; stats: TensorStats | null; ternaryFitDb: number | null } = planned.convertTensor(op.index, input, true);
    const view: Uint8Array = planned.inputBuffer(op.index);
    view.set(input);
    const again = planned.convertBuffered(op.index);
    const offset: number = op.outputOffset + out.bytes.length + again.bytes.length + header.length;
    if (op.chunkable && !op.copiesBytes && op.rowOrder === null) {
      const chunked = planned.chunkedOp(op.index, true);
      const piece: number = chunked.chunkBytes(2 ** 21);
      const part: Uint8Array = chunked.convert(input.subarray(0, piece));
      const fitDb: number | null = chunked.ternaryFitDb;
      const figures: TensorStats | null = chunked.finish();
    }
  }
  const total: number = planned.outputSize + planned.opCount + planned.op(0).outputLength + Number(planned.trainedTernary);
  planned.free();
}

const decoded: Float32Array = decodeFloats('F16', new Uint8Array(8));
const warning: string | undefined = ternaryFitWarning([6.5, 7.2]);
const configFile: string | undefined = folderFiles().find((f) => f.required && f.key === 'config')?.file;
const weightsFile: string = folderWeights(['config.json', 'model.safetensors']);

export { warning, configFile, folder, decoded, tq2Bytes, name, bytes, scales, codes, stats, y, yRef, bits, layoutName, values, zeroPoints, aBytes, aBack, cache, report, tq1Bytes, storedAs, bitnetPreset, shardFiles };
