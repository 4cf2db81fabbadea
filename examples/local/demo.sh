#!/usr/bin/env bash
# squall's local demo: builds squall, prepares a healthy config file, runs
# examples/local/config-corruption.yaml and shows what happened. The
# experiment is expected to deviate (exit 1): it finds the weakness, and the
# rollback restores the file.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p squall
work=$(mktemp -d /tmp/squall-demo.XXXXXX)
export SQUALL_DEMO_CONFIG="$work/app.conf"
printf 'mode: healthy\n' > "$SQUALL_DEMO_CONFIG"

set +e
./target/release/squall --log-file "$work/squall.log" run examples/local/config-corruption.yaml \
  --journal-path "$work/journal.json"
code=$?
set -e

echo
echo "squall exited with $code (1 = the steady state deviated: a weakness was found)."
echo "The config file after the rollback: $(cat "$SQUALL_DEMO_CONFIG")"
echo "Journal: $work/journal.json   Undo ledger: $work/journal.ledger.jsonl   Debug log: $work/squall.log"
[ "$code" -eq 1 ] && grep -q '^mode: healthy' "$SQUALL_DEMO_CONFIG"
