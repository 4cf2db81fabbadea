#!/usr/bin/env bash
# Scale of the Kubernetes API simulator: 100 nodes, 10,000 pods.
#
# 1. Runs the crate's 10,000-pod convergence test in release.
# 2. Starts `squall sandbox serve --nodes 100`, creates DEPLOYMENTS
#    Deployments of REPLICAS pods through the API (curl), and times
#    small GETs while the controllers create the pods (responsiveness):
#    `pods?limit=1` through curl every 0.2 s, and
#    `/api/v1/namespaces/default` every 20 ms (`sim_scale probe`).
# 3. Once every pod is Ready, reads the sandbox's peak RSS (VmHWM), then
#    lists all pods LISTS times without `limit`, LIST_CONCURRENCY at a time
#    (`sim_scale lists`, as the Python client lists), then measures list
#    latency through kubectl (`get pods -A -o name`, `-l app=web-7`,
#    `--field-selector spec.nodeName=node-7`; median of RUNS) and through
#    kube-rs (the `sim_scale` example), and reads the peak RSS again.
#
# Environment: CARGO_TARGET_DIR (default: target), RUNS (5), DEPLOYMENTS (100),
# REPLICAS (100), NODES (100), LISTS (20), LIST_CONCURRENCY (4),
# SKIP_BUILD=1 (reuse built binaries),
# SKIP_TEST=1 (skip step 1), KUBECTL (default: target/tools/kubectl, installed
# by scripts/install-kubectl.sh; the kubectl rows are skipped without it).
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
export CARGO_TARGET_DIR=$TARGET
RUNS=${RUNS:-5}
DEPLOYMENTS=${DEPLOYMENTS:-100}
REPLICAS=${REPLICAS:-100}
NODES=${NODES:-100}
LISTS=${LISTS:-20}
LIST_CONCURRENCY=${LIST_CONCURRENCY:-4}
KUBECTL=${KUBECTL:-target/tools/kubectl}
TOTAL=$((DEPLOYMENTS * REPLICAS))

if [[ ${SKIP_TEST:-0} != 1 ]]; then
    echo "== release scale test (100 nodes, 10,000 pods, in process)"
    cargo test --release -p squall-sim --test scale -- --include-ignored --nocapture 2>&1 |
        grep -E '^(scale|test |test result)'
fi
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release -p squall -p squall-sim --bin squall --example sim_scale
fi
SQUALL=$TARGET/release/squall
CLIENT=$TARGET/release/examples/sim_scale

WORK=$(mktemp -d)
SERVER_PID=
PROBE_PID=
# Every step may fail (the probe may be gone already) without skipping the rest.
cleanup() {
    if [[ -n $PROBE_PID ]]; then kill "$PROBE_PID" 2>/dev/null || true; fi
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$SQUALL" sandbox serve --nodes "$NODES" --kubeconfig "$WORK/kubeconfig" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    [[ -s $WORK/kubeconfig ]] && break
    sleep 0.1
done
SERVER=$(awk '/server:/ { print $2 }' "$WORK/kubeconfig")
[[ -n $SERVER ]] || { echo "sandbox did not start:"; cat "$WORK/serve.log"; exit 1; }
echo "== sandbox pid $SERVER_PID on $SERVER, $NODES nodes"

# Milliseconds of one GET (curl's total time).
get_ms() { curl -s -o /dev/null -w '%{time_total}\n' "$SERVER$1" | awk '{ printf "%.1f\n", $1 * 1000 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
max() { sort -n | tail -1; }

deployment() {
    cat <<EOF
{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web-$1"},
 "spec":{"replicas":$REPLICAS,"selector":{"matchLabels":{"app":"web-$1"}},
  "template":{"metadata":{"labels":{"app":"web-$1"}},
   "spec":{"containers":[{"name":"app","image":"nginx:1.27","ports":[{"containerPort":80}]}]}}}}
EOF
}

# The 20 ms probe runs from before the first POST until every pod is Ready.
"$CLIENT" probe "$SERVER" "$TOTAL" >"$WORK/probe.txt" &
PROBE_PID=$!
start=$(date +%s%N)
for i in $(seq 0 $((DEPLOYMENTS - 1))); do
    deployment "$i" | curl -sf -o /dev/null -H 'content-type: application/json' --data-binary @- \
        "$SERVER/apis/apps/v1/namespaces/default/deployments"
done
created_ms=$(( ($(date +%s%N) - start) / 1000000 ))

# While the controllers work: small GETs, timed, until every pod is Ready.
: >"$WORK/busy.txt"
ready=0
for _ in $(seq 3000); do
    get_ms "/api/v1/namespaces/default/pods?limit=1" >>"$WORK/busy.txt"
    ready=$(curl -sf "$SERVER/apis/apps/v1/namespaces/default/deployments" |
        jq '[.items[].status.readyReplicas // 0] | add // 0')
    [[ $ready -ge $TOTAL ]] && break
    sleep 0.2
done
converged_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[[ $ready -ge $TOTAL ]] || { echo "only $ready of $TOTAL pods ready"; exit 1; }
busy_median=$(median <"$WORK/busy.txt")
busy_max=$(max <"$WORK/busy.txt")
wait "$PROBE_PID" || { echo "probe failed"; exit 1; }
IFS=$'\t' read -r _ _ probe_n probe_med probe_p99 probe_max <"$WORK/probe.txt"
hwm_converged=$(awk '/VmHWM/ { print $2 }' "/proc/$SERVER_PID/status")

rows=()
while IFS= read -r line; do rows+=("$line"); done < <("$CLIENT" lists "$SERVER" "$LISTS" "$LIST_CONCURRENCY")
hwm_lists=$(awk '/VmHWM/ { print $2 }' "/proc/$SERVER_PID/status")
if [[ -x $KUBECTL ]]; then
    kube() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" "$@"; }
    for q in "-A" "-A -l app=web-7" "-A --field-selector spec.nodeName=node-7"; do
        times=()
        for _ in $(seq "$RUNS"); do
            t=$(date +%s%N)
            # shellcheck disable=SC2086
            count=$(kube get pods $q -o name | wc -l)
            times+=($(( ($(date +%s%N) - t) / 1000000 )))
        done
        med=$(printf '%s\n' "${times[@]}" | median)
        mx=$(printf '%s\n' "${times[@]}" | max)
        rows+=("kubectl	get pods $q -o name	$count	$med	$mx")
    done
else
    echo "($KUBECTL not found: kubectl rows skipped; scripts/install-kubectl.sh installs it)"
fi
while IFS= read -r line; do rows+=("$line"); done < <("$CLIENT" "$SERVER" "$RUNS" app=web-7 node-7)

hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$SERVER_PID/status")
rss=$(awk '/VmRSS/ { print $2 }' "/proc/$SERVER_PID/status")

echo
echo "== $NODES nodes, $TOTAL pods ($DEPLOYMENTS Deployments x $REPLICAS)"
printf '%-28s %s\n' "create (POSTs)" "${created_ms} ms"
printf '%-28s %s\n' "all pods Ready after" "${converged_ms} ms"
printf '%-28s %s\n' "GET ?limit=1 while converging" "median ${busy_median} ms, max ${busy_max} ms ($(wc -l <"$WORK/busy.txt") GETs)"
printf '%-28s %s\n' "GET namespace, converging" "median ${probe_med} ms, p99 ${probe_p99} ms, max ${probe_max} ms ($probe_n GETs)"
printf '%-28s %s\n' "peak RSS (VmHWM)" "$((hwm_converged / 1024)) MiB converged, $((hwm_lists / 1024)) MiB after $LISTS full lists, $((hwm / 1024)) MiB at the end (now $((rss / 1024)) MiB)"
echo
printf '%-8s %-56s %6s %10s %10s\n' client query items median_ms max_ms
for r in "${rows[@]}"; do
    IFS=$'\t' read -r c q n med mx <<<"$r"
    printf '%-8s %-56s %6s %10s %10s\n' "$c" "$q" "$n" "$med" "$mx"
done
if ((hwm / 1024 >= 300)); then
    echo "FAIL: peak RSS over 300 MiB"
    exit 1
fi
