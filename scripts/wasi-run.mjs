// Runs a wasm32-wasip1 binary under Node's built-in WASI (preview1), as a cargo runner:
//   node --no-warnings scripts/wasi-run.mjs file.wasm [args...]
// The module's arguments are passed through and its exit code becomes the process's.
// The current directory is visible as '.' and under its absolute path (tests find
// their files through CARGO_MANIFEST_DIR); nothing else of the file system is.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: process.env, preopens: { '.': process.cwd(), [process.cwd()]: process.cwd() }, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
