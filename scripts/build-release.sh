#!/usr/bin/env bash
# Builds the shipped squall binary:
#   - static and non-PIE (no shared libraries to map, no relocations at start);
#   - linked by rust-lld (shipped with the Rust toolchain) with a
#     symbol-ordering file, so the functions a run executes sit together in
#     the binary. Most of squall's memory is the binary's own pages, and the
#     kernel maps them around every page a run touches (fault-around), so
#     laying the hot code out contiguously is what keeps the resident size
#     small (docs/performance.md).
# The ordering comes from a profiling run of the same build under callgrind
# (valgrind): squall --help, validate, and the bench experiments against a
# loopback HTTP server. Functions a run never executes go after them.
#
#   scripts/build-release.sh [OUT]      # default OUT: target/squall-release
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/squall-release}"
TARGET=x86_64-unknown-linux-gnu
GCC_LD="$(rustc --print sysroot)/lib/rustlib/$TARGET/bin/gcc-ld"
WORK="target/release-profile"
mkdir -p "$WORK"

command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }

export RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -C link-arg=-B$GCC_LD -C link-arg=-fuse-ld=lld"
# Symbols are kept in the profiling build; the final link strips them.
export CARGO_PROFILE_RELEASE_STRIP=false
echo "build-release: profiling build" >&2
cargo build --release -q -p squall --target "$TARGET"
BIN="target/$TARGET/release/squall"

# A loopback server for the HTTP experiment; stopped on exit.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory bench/experiments >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
export BENCH_URL="http://127.0.0.1:$PORT/minimal.yaml"

echo "build-release: recording which functions a run executes" >&2
rm -f "$WORK"/cg.*
profile() {
  local name=$1; shift
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$WORK/cg.$name" \
    "$BIN" "$@" >/dev/null 2>&1 || true
}
profile help --help
profile validate validate bench/experiments/http-200.yaml
profile minimal --no-log-file run bench/experiments/minimal.yaml --journal-path "$WORK/j.json"
profile http --no-log-file run bench/experiments/http-200.yaml --journal-path "$WORK/j.json"
python3 scripts/symbol-order.py "$WORK"/cg.* > "$WORK/symbol-order.txt"
echo "build-release: $(wc -l < "$WORK/symbol-order.txt") functions laid out first" >&2

echo "build-release: final link" >&2
cargo rustc --release -q -p squall --bin squall --target "$TARGET" -- \
  -C link-arg=-Wl,--symbol-ordering-file="$PWD/$WORK/symbol-order.txt" \
  -C link-arg=-Wl,--no-warn-symbol-ordering -C strip=symbols
mkdir -p "$(dirname "$OUT")"
cp "$BIN" "$OUT"
echo "build-release: $OUT" >&2
