// Calls the types must refuse: pkg-tests/types.test.mjs expects tsc to fail on each,
// so that the check of api.ts is known to bite.
import { quantizeTernary } from 'ternary-quant';

quantizeTernary('not a Float32Array', 4, 256);
quantizeTernary(new Float32Array(1024), 4, 256, { layout: 'tq3_0' });
