#!/usr/bin/env bash
# Times the CLI converting a model to GGUF TQ2_0, with /usr/bin/time -v: input MB/s
# over the whole command (process start to exit, wasm load and fsync included) and peak
# RSS, against the bars of DESIGN section 10 (>= 300 MB/s of input; peak RSS <= 2x the
# largest tensor + 64 MB).
#
# Usage: scripts/bench-convert.sh [RUNS]        a ~90 MB F32 safetensors file (default 7 runs)
#        scripts/bench-convert.sh --1b [RUNS]   a 1.26 B-parameter Hugging Face model folder
#                                               (TinyLlama-1.1B's shape, 2.5 GB of BF16, a
#                                               32,000-token tokenizer.json; default 3 runs)
# The machine may be busy with other work, so every configuration runs RUNS times and
# the best, median and worst are printed. The input is read once first, so that runs
# measure the conversion, not the disk.
set -euo pipefail
LOG_NAME=bench-convert
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

size=small
if [ "${1:-}" = "--1b" ]; then
    size=1b
    shift
fi
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package 'time')"
[ -f pkg/package.json ] || die "pkg/ is not built; run scripts/build.sh"

dir=target/bench
mkdir -p "$dir"
if [ "$size" = small ]; then
    runs=${1:-7}
    model=$dir/model.safetensors
    weights=$model
    out=$dir/model-tq2_0.gguf
    # 768 hidden, 2048 intermediate, 2 layers, 5120-token vocabulary: 88 MB of F32.
    args=(--hidden 768 --inter 2048 --layers 2 --vocab 5120)
else
    runs=${1:-3}
    model=$dir/folder-1b
    weights=$model/model.safetensors
    out=$dir/folder-1b-tq2_0.gguf
    args=(--hidden 2048 --inter 5632 --layers 22 --vocab 32000 --dtype BF16 --fill uniform)
    mkdir -p "$model"
    # config.json of that shape, and a byte-level BPE tokenizer.json of 32,000 tokens.
    node -e '
      const fs = require("fs");
      const [dir] = process.argv.slice(1);
      const config = { architectures: ["LlamaForCausalLM"], hidden_size: 2048, intermediate_size: 5632,
        num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 32, max_position_embeddings: 2048,
        rms_norm_eps: 1e-5, rope_theta: 10000, vocab_size: 32000, tie_word_embeddings: false };
      fs.writeFileSync(`${dir}/config.json`, JSON.stringify(config, null, 1));
      const vocab = { "<s>": 0, "</s>": 1 };
      for (let i = 2; i < 32000; i++) vocab[`t${i}`] = i;
      const tokenizer = { added_tokens: [{ id: 0, content: "<s>", special: true }, { id: 1, content: "</s>", special: true }],
        pre_tokenizer: { type: "ByteLevel", add_prefix_space: false }, model: { type: "BPE", vocab, merges: [] } };
      fs.writeFileSync(`${dir}/tokenizer.json`, JSON.stringify(tokenizer));
    ' "$model"
fi
if [ ! -f "$weights" ] || [ "$(cat "$weights.args" 2>/dev/null)" != "${args[*]}" ]; then
    node pkg-tests/fixtures/make-model.mjs "$weights" "${args[@]}"
    echo "${args[*]}" >"$weights.args"
fi
cat "$weights" >/dev/null

bytes=$(file_size "$weights")
largest=$(node pkg/cli.js inspect "$weights" --json | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () =>
    process.stdout.write(String(Math.max(...JSON.parse(s).tensors.map((t) => t.byteLength)))));')
rss_bar_kb=$(((2 * largest + 64 * 1000 * 1000) / 1024))
log "model: $model, $bytes bytes, largest tensor $largest bytes; RSS bar 2 x largest + 64 MB = $rss_bar_kb kB"
log "node $(node --version), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Start-up baseline: `inspect` of the same model starts Node, loads the model-file build
# and reads the header, as a conversion does before its first tensor. Its median wall
# time is taken off each conversion for the "after start-up" figure.
startup_log=$(mktemp)
for ((i = 0; i < runs; i++)); do
    /usr/bin/time -v node pkg/cli.js inspect "$model" 2>>"$startup_log" >/dev/null
done
startup_s=$(node -e '
  const text = require("fs").readFileSync(process.argv[1], "utf8");
  const secs = [...text.matchAll(/Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/g)]
    .map((m) => Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3])).sort((x, y) => x - y);
  process.stdout.write(String(secs[Math.floor(secs.length / 2)]));' "$startup_log")
rm -f "$startup_log"
log "start-up baseline (median wall time of \`inspect\` of the same model): $startup_s s"

# run LABEL ARGS...: RUNS conversions, then best / median / worst of MB/s and peak RSS.
run() {
    local label=$1 i
    shift
    local log_file
    log_file=$(mktemp)
    for ((i = 0; i < runs; i++)); do
        /usr/bin/time -v node pkg/cli.js convert "$model" "$out" --quiet "$@" 2>>"$log_file" >/dev/null
    done
    node -e '
      const fs = require("fs");
      const [file, bytes, bar, label, cmd, startup] = process.argv.slice(1);
      const text = fs.readFileSync(file, "utf8");
      const secs = [...text.matchAll(/Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/g)]
        .map((m) => Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]));
      const rss = [...text.matchAll(/Maximum resident set size \(kbytes\): (\d+)/g)].map((m) => Number(m[1]));
      const user = [...text.matchAll(/User time \(seconds\): ([\d.]+)/g)].map((m) => Number(m[1]));
      const sys = [...text.matchAll(/System time \(seconds\): ([\d.]+)/g)].map((m) => Number(m[1]));
      const cpu = user.map((u, i) => u + sys[i]);
      const sorted = (a) => [...a].sort((x, y) => x - y);
      const mbs = sorted(secs.map((s) => Number(bytes) / 1e6 / s)).reverse();
      const r = sorted(rss);
      const med = (a) => a[Math.floor(a.length / 2)];
      const f = (x) => x.toFixed(0);
      console.log(`${label}: ${secs.length} runs of \`${cmd}\``);
      console.log(`  input MB/s: best ${f(mbs[0])}, median ${f(med(mbs))}, worst ${f(mbs[mbs.length - 1])}   (bar >= 300)`);
      const after = sorted(secs.map((s) => Number(bytes) / 1e6 / Math.max(s - Number(startup), 1e-3))).reverse();
      console.log(`  after start-up MB/s: best ${f(after[0])}, median ${f(med(after))}, worst ${f(after[after.length - 1])}   (wall time less the start-up baseline; goal >= 600)`);
      console.log(`  wall s:     best ${Math.min(...secs).toFixed(3)}, median ${med(sorted(secs)).toFixed(3)}, worst ${Math.max(...secs).toFixed(3)}`);
      console.log(`  cpu s:      best ${Math.min(...cpu).toFixed(3)}, median ${med(sorted(cpu)).toFixed(3)}, worst ${Math.max(...cpu).toFixed(3)}   (user + system, all threads)`);
      console.log(`  peak RSS:   best ${r[0]} kB, median ${med(r)} kB, worst ${r[r.length - 1]} kB   (bar <= ${bar} kB)`);
    ' "$log_file" "$bytes" "$rss_bar_kb" "$label" "node pkg/cli.js convert $model $out --quiet $*" "$startup_s"
    rm -f "$log_file"
}

run "default (no error figures)"
run "with --report (error figures measured)" --report "$dir/report.json"
run "--threads 2" --threads 2
