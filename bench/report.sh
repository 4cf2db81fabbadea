#!/usr/bin/env bash
# `squall report` against upstream's `chaos report` (chaostoolkit-reporting
# with Debian's pandoc), in the same run on this machine: Markdown and HTML
# of 1 and 50 journals, plus squall alone on 1,000 journals (every format).
# Prints a Markdown table of median wall time and peak memory, and ratios.
#
#   bench/report.sh
#   ROUNDS=9 SQUALL=target/release/squall bench/report.sh
#
# The journal is a real one: examples/local/config-corruption.yaml run by
# squall (upstream's report reads squall's journals), copied N times.
# Peak memory is the largest resident set of the process tree (for
# upstream, Python or the pandoc child it starts), from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"
OUT="bench/out/report"
mkdir -p "$OUT"

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
command -v pandoc >/dev/null || { apt-get update -qq && apt-get install -y -qq pandoc; }
if [ -z "${SQUALL:-}" ]; then
  cargo build --release -q -p squall
  SQUALL="$PWD/target/release/squall"
fi
VENV="bench/out/ctk-report-venv"
if [ ! -x "$VENV/bin/chaos" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q chaostoolkit==1.19.0 chaostoolkit-reporting
fi
CHAOS="$PWD/$VENV/bin/chaos"

# One real journal, then copies of it.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'mode: healthy\n' > "$work/app.conf"
SQUALL_DEMO_CONFIG="$work/app.conf" "$SQUALL" --no-log-file run \
  examples/local/config-corruption.yaml --journal-path "$work/journal.json" >/dev/null 2>&1 || true
for n in 1 50 1000; do
  mkdir -p "$work/$n"
  for i in $(seq -w 1 "$n"); do cp "$work/journal.json" "$work/$n/j$i.json"; done
done

# measure TOOL FORMAT N -> "median_seconds median_peak_kib"
measure() {
  local tool=$1 format=$2 n=$3 ext=$2
  [ "$format" = markdown ] && ext=md
  [ "$format" = junit ] && ext=xml
  local report="$work/out-$tool-$n.$ext"
  if [ "$tool" = squall ]; then
    python3 bench/measure.py "$ROUNDS" "$SQUALL" --no-log-file report --export-format "$format" "$work/$n"/j*.json "$report"
  else
    python3 bench/measure.py "$ROUNDS" "$CHAOS" --no-version-check --no-log-file report --export-format="$format" "$work/$n"/j*.json "$report"
  fi
  [ -s "$report" ] || { echo "$tool wrote no $format report for $n journals" >&2; exit 1; }
}

printf '| format | journals | squall wall (s) | chaos report wall (s) | speed-up | squall peak RSS (MiB) | chaos report peak RSS (MiB) | memory ratio |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for format in markdown html; do
  for n in 1 50; do
    read -r sw sm < <(measure squall "$format" "$n")
    read -r cw cm < <(measure chaos "$format" "$n")
    awk -v f="$format" -v n="$n" -v sw="$sw" -v cw="$cw" -v sm="$sm" -v cm="$cm" 'BEGIN {
      printf "| %s | %d | %.4f | %.3f | %.0fx | %.1f | %.1f | 1/%.1f |\n", f, n, sw, cw, cw / sw, sm / 1024, cm / 1024, cm / sm }'
  done
done
echo
printf '| squall, 1,000 journals | wall (s) | peak RSS (MiB) | report size (KiB) |\n|---|---|---|---|\n'
for format in html markdown pdf junit json; do
  read -r sw sm < <(measure squall "$format" 1000)
  ext=$format; [ "$format" = markdown ] && ext=md; [ "$format" = junit ] && ext=xml
  size=$(stat -c %s "$work/out-squall-1000.$ext")
  awk -v f="$format" -v sw="$sw" -v sm="$sm" -v sz="$size" 'BEGIN {
    printf "| %s | %.3f | %.1f | %.0f |\n", f, sw, sm / 1024, sz / 1024 }'
done
echo
echo "(median of $ROUNDS rounds each, measured on this machine in this run)"
