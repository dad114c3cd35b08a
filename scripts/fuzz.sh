#!/usr/bin/env bash
# Fuzzes the model-file readers, the conversion plan, model folders and the quantize API with
# cargo-fuzz (libFuzzer), one target at a time.
#
#   scripts/fuzz.sh                      # every target, 10M runs or 1 hour each
#   scripts/fuzz.sh -r 100000 -t 60      # every target, 100k runs or 60 s each
#   scripts/fuzz.sh -t 300 plan_convert  # one target
#   scripts/fuzz.sh --install            # only install the toolchain
#   scripts/fuzz.sh --cmin               # minimise the committed corpora
#
# Installs (once; skipped when present) the nightly toolchain and cargo-fuzz from
# crates.io. Each target runs on fuzz/corpus/<target> (grown in place) with the seeds of
# fuzz/seeds/<target> and the dictionary of fuzz/dict/, and its libFuzzer log goes to
# fuzz/logs/<target>.log. A crash stops the script with the reproducer's path
# (fuzz/artifacts/<target>/); a summary line per target goes to fuzz/logs/summary.tsv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
TARGETS_ALL=(safetensors_header gguf_reader plan_convert quantize_api model_folder)
RUNS=10000000
SECONDS_PER_TARGET=3600
RSS_MB=2048
MODE=run
TARGETS=()

while [ $# -gt 0 ]; do
  case "$1" in
    -r|--runs) RUNS="$2"; shift 2 ;;
    -t|--time) SECONDS_PER_TARGET="$2"; shift 2 ;;
    --install) MODE=install; shift ;;
    --cmin) MODE=cmin; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${TARGETS_ALL[@]}")

install() {
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
  fi
}

dict_of() {
  case "$1" in
    safetensors_header) echo "$FUZZ/dict/safetensors.dict" ;;
    gguf_reader) echo "$FUZZ/dict/gguf.dict" ;;
    plan_convert) echo "$FUZZ/dict/plan_convert.dict" ;;
    model_folder) echo "$FUZZ/dict/model_folder.dict" ;;
    *) echo "" ;;
  esac
}

max_len_of() {
  case "$1" in
    quantize_api) echo 4096 ;;
    *) echo 8192 ;;
  esac
}

install
[ "$MODE" = install ] && exit 0

cd "$FUZZ"
python3 make_seeds.py >/dev/null
cargo +nightly fuzz build

if [ "$MODE" = cmin ]; then
  for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" logs
    cargo +nightly fuzz cmin "$t" "corpus/$t" -- -rss_limit_mb="$RSS_MB" -max_len="$(max_len_of "$t")" \
      >"logs/cmin-$t.log" 2>&1 || { echo "cmin of $t failed; see fuzz/logs/cmin-$t.log" >&2; exit 1; }
    echo "$t: $(ls "corpus/$t" | wc -l) files, $(du -sh "corpus/$t" | cut -f1)"
  done
  exit 0
fi

mkdir -p logs
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
  args=(-runs="$RUNS" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_MB" -max_len="$(max_len_of "$t")"
        -print_final_stats=1)
  d="$(dict_of "$t")"
  [ -n "$d" ] && args+=(-dict="$d")
  echo "== $t: ${args[*]}"
  start=$(date +%s)
  status=0
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- "${args[@]}" >"logs/$t.log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(ls "corpus/$t" | wc -l)
  crashes=$(ls "artifacts/$t" | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "${execs:-?}" "$elapsed" "${rate:-?}" "$corpus" \
    "$crashes" | tee -a logs/summary.tsv
  if [ "$status" -ne 0 ]; then
    echo "$t failed (exit $status); reproducer(s) in fuzz/artifacts/$t, log in fuzz/logs/$t.log" >&2
    grep -m1 -A3 'panicked' "logs/$t.log" >&2 || tail -20 "logs/$t.log" >&2
    exit 1
  fi
done
