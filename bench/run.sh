#!/usr/bin/env bash
# Runs the same experiments with squall and with Chaos Toolkit (installed
# from the Python registry into a throwaway virtual environment) on this
# machine, in one run, and prints ratios of wall time and peak memory.
#
#   bench/run.sh            # 5 rounds of each
#   ROUNDS=10 bench/run.sh
#   SQUALL=bench/out/squall bench/run.sh   # measure an existing build
#
# Absolute times depend on the machine; only the ratios are meaningful.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"
OUT="bench/out"
mkdir -p "$OUT"

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
# The shipped form (scripts/build-release.sh): one static, non-PIE binary
# with the code a run executes laid out together.
# SQUALL=path/to/squall skips the build and measures that binary.
if [ -z "${SQUALL:-}" ]; then
  scripts/build-release.sh "$OUT/squall"
  SQUALL="$PWD/$OUT/squall"
fi

VENV="$OUT/ctk-venv"
if [ ! -x "$VENV/bin/chaos" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q chaostoolkit
fi
CHAOS="$VENV/bin/chaos"

# A local HTTP server for the probes: loopback only, stopped on exit.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory bench/experiments >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
export BENCH_URL="http://127.0.0.1:$PORT/minimal.yaml"

# measure TOOL EXPERIMENT -> "median_seconds median_peak_rss_kib"
measure() {
  local tool=$1 exp=$2 work
  work=$(mktemp -d)
  if [ "$tool" = squall ]; then
    python3 bench/measure.py "$ROUNDS" "$SQUALL" --no-log-file run "$exp" --journal-path "$work/j.json"
  else
    python3 bench/measure.py "$ROUNDS" "$CHAOS" --no-version-check --no-log-file run "$exp" --journal-path "$work/j.json"
  fi
  rm -rf "$work"
}

printf '| experiment | squall wall (s) | chaos wall (s) | speed-up | squall peak RSS (MiB) | chaos peak RSS (MiB) | memory ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
for exp in minimal http-200; do
  file="bench/experiments/$exp.yaml"
  read -r sw sm < <(measure squall "$file")
  read -r cw cm < <(measure chaos "$file")
  awk -v e="$exp" -v sw="$sw" -v cw="$cw" -v sm="$sm" -v cm="$cm" 'BEGIN {
    printf "| %s | %.4f | %.4f | %.1fx | %.1f | %.1f | 1/%.1f |\n", e, sw, cw, cw / sw, sm / 1024, cm / 1024, cm / sm }'
done
echo
echo "(median of $ROUNDS rounds each, measured on this machine in this run)"
