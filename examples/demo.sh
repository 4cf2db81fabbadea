#!/usr/bin/env bash
# squall's main job on the built-in sandbox: builds squall, starts a
# simulated cluster with the book's go-demo-8 application, and runs the
# book's experiments against it:
#   health-http.yaml  terminate an application pod; with two replicas the
#                     app keeps answering            -> completed (exit 0)
#   health-db.yaml    terminate the database pod; the app stops answering
#                     in time                        -> deviated  (exit 1)
# and ends by writing an HTML report of both runs (squall report).
# Everything runs on 127.0.0.1 and stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p squall
squall="$PWD/target/release/squall"
work=$(mktemp -d /tmp/squall-demo.XXXXXX)
cd "$work"

"$squall" --log-file sandbox.log sandbox serve --kubeconfig kubeconfig --scenario go-demo-8 > sandbox.env &
sandbox=$!
trap 'kill $sandbox 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q INGRESS_HOST sandbox.env 2>/dev/null && break; sleep 0.1; done
# shellcheck disable=SC1091
source sandbox.env
echo "Sandbox up: KUBECONFIG=$KUBECONFIG INGRESS_HOST=$INGRESS_HOST (waiting for go-demo-8 to be ready)"
python3 - "$INGRESS_HOST" <<'PY'
import sys, time, urllib.request
for _ in range(120):
    try:
        req = urllib.request.Request(f"http://{sys.argv[1]}/demo/person", headers={"Host": "go-demo-8.acme.com"})
        if urllib.request.urlopen(req, timeout=3).status == 200:
            break
    except OSError:
        pass
    time.sleep(0.5)
PY

run() {
  echo; echo "=== squall run $1"
  set +e
  "$squall" --log-file squall.log run "$OLDPWD/examples/book/$1" --journal-path "${1%.yaml}.journal.json"
  echo "exit code: $?"
  set -e
}
run health-http.yaml
run health-db.yaml
echo
"$squall" --no-log-file report --title "squall demo: the book's experiments" \
  health-http.journal.json health-db.journal.json report.html
echo "Journals and logs are in $work"
echo "Report: $work/report.html (open it in a browser; one file, works offline)"
