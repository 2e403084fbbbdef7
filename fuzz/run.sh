#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time (fuzz/README.md).
#
#   fuzz/run.sh SECONDS [TARGET...]      (no TARGET: all of them)
#
# `make fuzz-smoke` runs every target for 30 s (CI), `make fuzz` for FUZZ_SECONDS each.
# A target that fails (crash, panic, broken invariant, hang, out of memory) leaves its
# reproducer under fuzz/artifacts/<target>/; the script says where, goes on with the other
# targets, and exits 1 at the end.
#
# Environment:
#   WARDEN_FUZZ_TARGET_DIR  the cargo target directory (default ~/.cache/warden-fuzz-target),
#                           outside the clone so that CI stays warm. It also holds the
#                           inputs a run discovers (corpus/<target>/: the committed seeds in
#                           fuzz/corpus/ are only read), the logs and the guest cache.
#   FUZZ_JOBS               parallel fuzzing processes per target (default 1).
#   FUZZ_FRESH_CORPUS=1     start from the committed seeds alone, in a scratch directory
#                           (`make fuzz-smoke`: the run stays bounded and repeatable however
#                           much earlier campaigns found); otherwise runs build on what
#                           earlier runs found in <target dir>/corpus/<target>.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ]; then
  echo "usage: fuzz/run.sh SECONDS [TARGET...]" >&2
  exit 2
fi
seconds=$1
shift

target_dir="${WARDEN_FUZZ_TARGET_DIR:-$HOME/.cache/warden-fuzz-target}"
# The fuzz targets embed the guests of the main (release) build of this tree rather than
# building them again (build.rs): bring that build up to date and take its OUT_DIR. A no-op
# when `make test` has just built it.
export WARDEN_PREBUILT_GUESTS
WARDEN_PREBUILT_GUESTS="$(cargo build --release --locked --message-format=json-render-diagnostics \
  | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "build-script-executed" and "#warden@" in message["package_id"]:
        print(message["out_dir"])
')"
if [ ! -f "$WARDEN_PREBUILT_GUESTS/javascript.wasm" ]; then
  echo "fuzz: the main build left no guests (OUT_DIR: '$WARDEN_PREBUILT_GUESTS')" >&2
  exit 1
fi
# Precompiled guests, shared by every fuzz process (the Python guest takes seconds to compile).
export WARDEN_FUZZ_CACHE_DIR="$target_dir/warden-fuzz-guest-cache"
# Any CARGO_TARGET_DIR (the Makefile exports the main build's) must not leak into this build.
unset CARGO_TARGET_DIR

# --sanitizer none: Warden's host code is safe Rust, the interpreters' C code runs inside wasm
# where ASan cannot see it, and wasmtime's signal-based traps and large virtual-memory
# reservations (the pooling allocator) do not mix well with ASan.
# --debug-assertions: also overflow checks, in Warden and in wasmtime.
flags=(--fuzz-dir fuzz --sanitizer none --debug-assertions --target-dir "$target_dir")

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi

started=$(date +%s)
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz: built in $(( $(date +%s) - started )) s"

mkdir -p "$target_dir/logs"
failed=()
summary=()
for target in "${targets[@]}"; do
  if [ "${FUZZ_FRESH_CORPUS:-0}" = 1 ]; then
    work="$target_dir/smoke-corpus/$target"
    rm -rf "$work"
  else
    work="$target_dir/corpus/$target"
  fi
  mkdir -p "$work" "fuzz/corpus/$target"
  log="$target_dir/logs/$target.log"
  args=(
    "-max_total_time=$seconds"
    # A single input running this long is a hang (every run has a deadline of 2 s at most).
    "-timeout=30"
    "-rss_limit_mb=4096"
    "-print_final_stats=1"
  )
  if [ -n "${FUZZ_JOBS:-}" ] && [ "${FUZZ_JOBS}" -gt 1 ]; then
    args+=("-fork=$FUZZ_JOBS")
  fi
  if [ -f "fuzz/dict/$target.dict" ]; then
    args+=("-dict=fuzz/dict/$target.dict")
  fi
  echo "fuzz: $target for $seconds s (log: $log)"
  # New inputs go to the first corpus directory ($work); the committed seeds are only read.
  if cargo +nightly fuzz run "${flags[@]}" "$target" "$work" "fuzz/corpus/$target" \
       -- "${args[@]}" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    summary+=("$(printf '%-16s ok      %8s runs %6s exec/s  peak RSS %s MB' \
      "$target" "${runs:-?}" "${rate:-?}" "${rss:-?}")")
  else
    failed+=("$target")
    summary+=("$(printf '%-16s FAILED  see %s' "$target" "$log")")
    echo "fuzz: $target FAILED; the end of its log:"
    tail -n 60 "$log" | sed 's/^/    /'
    artifacts=$(grep -o 'Test unit written to [^ ]*' "$log" | sed 's/^Test unit written to //' \
      | sort -u || true)
    if [ -n "$artifacts" ]; then
      for a in $artifacts; do
        echo "fuzz: $target: reproducer kept at $a"
        echo "fuzz:   replay: WARDEN_PREBUILT_GUESTS=$WARDEN_PREBUILT_GUESTS cargo +nightly fuzz run ${flags[*]} $target $a"
      done
    else
      echo "fuzz: $target: no reproducer was written (a build or start-up failure?)"
    fi
  fi
done

echo "fuzz: summary (${seconds} s per target, $(( $(date +%s) - started )) s in all)"
for line in "${summary[@]}"; do
  echo "  $line"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (reproducers under fuzz/artifacts/<target>/)" >&2
  exit 1
fi
