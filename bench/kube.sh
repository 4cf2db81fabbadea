#!/usr/bin/env bash
# squall vs Chaos Toolkit's Kubernetes plugin (chaostoolkit-kubernetes) vs
# kubectl, all against `squall sandbox serve` on this machine (loopback
# only), in one run; prints the medians and their ratios as markdown.
#
#   bench/kube.sh                  # 5 rounds of each
#   ROUNDS=3 bench/kube.sh
#   SCENARIOS="pods drain" bench/kube.sh    # any of: pods drain scale
#
# Scenarios (bench/kube/bench.py does the rounds; every round starts from
# the same state and is checked afterwards):
#   pods   examples/book/terminate-pod.yaml and terminate-pod-ssh.yaml (a Pod
#          go-demo-8 in namespace go-demo-8, created afresh before each
#          round) and bench/kube/pod-probes.yaml (count_pods, pods_in_phase
#          over a 10-replica Deployment), by `squall run` and `chaos run`.
#   drain  a node holding DRAIN_PODS (110) pods of one Deployment, drained by
#          `squall run bench/kube/drain.yaml`, by `chaos run` of the same
#          file and by `kubectl drain NODE --ignore-daemonsets
#          --delete-emptydir-data --force`. Between rounds the node is
#          uncordoned and the pods settle on the other node, which the next
#          round drains.
#   scale  count_pods over SCALE_DEPLOYMENTS x SCALE_REPLICAS (100 x 100) pods
#          on SCALE_NODES (100) nodes (bench/kube/count-pods.yaml), and
#          `kubectl get pods -A --no-headers | wc -l` for reference. If the
#          pods are not all Ready within SCALE_WAIT (300) seconds, the
#          replicas are halved and it is measured at the smaller size (said
#          under the table).
#
# The upstream plugin relies on two things a real cluster does and the
# sandbox does too: nodes report every status.nodeInfo field (the Python
# client's models refuse a Node without them) and pods get the
# ServiceAccount admission plugin's kube-api-access volume (upstream
# drain_nodes iterates spec.volumes and crashes when there is none).
#
# Wall time: median of ROUNDS, taken around the process as bench/measure.py
# does; peak RSS: median of another ROUNDS through /usr/bin/time. Absolute
# times depend on the machine and on the simulator; the ratios are the
# point. Nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"
SCENARIOS="${SCENARIOS:-pods drain scale}"
DRAIN_PODS="${DRAIN_PODS:-110}"
SCALE_NODES="${SCALE_NODES:-100}"
SCALE_DEPLOYMENTS="${SCALE_DEPLOYMENTS:-100}"
SCALE_REPLICAS="${SCALE_REPLICAS:-100}"
SCALE_WAIT="${SCALE_WAIT:-300}"
OUT="bench/out"
mkdir -p "$OUT"

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }

# squall: the shipped build (scripts/build-release.sh, as bench/run.sh makes
# it). If it is missing and a cargo build is running (perhaps making it),
# wait for that (at most 30 minutes) instead of starting a second one.
SQUALL="$PWD/$OUT/squall"
if [ ! -x "$SQUALL" ]; then
  for _ in $(seq 360); do
    [ -x "$SQUALL" ] && break
    pgrep -x cargo >/dev/null || break
    echo "kube.sh: waiting for the running cargo build" >&2
    sleep 5
  done
  [ -x "$SQUALL" ] || scripts/build-release.sh "$OUT/squall"
fi

# Chaos Toolkit and its Kubernetes plugin, from the Python registry.
VENV="$OUT/ctk-venv"
if [ ! -x "$VENV/bin/chaos" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q chaostoolkit
fi
"$VENV/bin/python" -c 'import chaosk8s' 2>/dev/null || "$VENV/bin/pip" install -q chaostoolkit-kubernetes
CHAOS="$PWD/$VENV/bin/chaos"

KUBECTL="$PWD/target/tools/kubectl"
[ -x "$KUBECTL" ] || scripts/install-kubectl.sh target/tools >/dev/null

WORK=$(mktemp -d)
SANDBOX_PID=
BENCH_PID=
stop_sandbox() {
  if [ -n "$SANDBOX_PID" ]; then
    kill "$SANDBOX_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SANDBOX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SANDBOX_PID" 2>/dev/null || true
    wait "$SANDBOX_PID" 2>/dev/null || true
    SANDBOX_PID=
  fi
}
cleanup() {
  if [ -n "$BENCH_PID" ]; then kill "$BENCH_PID" 2>/dev/null || true; wait "$BENCH_PID" 2>/dev/null || true; fi
  stop_sandbox
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_sandbox NAME NODES: serves a fresh sandbox; sets KUBECONFIG_PATH and SERVER.
start_sandbox() {
  local name=$1 nodes=$2
  KUBECONFIG_PATH="$WORK/$name.kubeconfig"
  "$SQUALL" sandbox serve --no-log-file --nodes "$nodes" --seed 1 \
    --kubeconfig "$KUBECONFIG_PATH" >"$WORK/$name.log" 2>&1 &
  SANDBOX_PID=$!
  for _ in $(seq 100); do
    [ -s "$KUBECONFIG_PATH" ] && break
    kill -0 "$SANDBOX_PID" 2>/dev/null || break
    sleep 0.1
  done
  SERVER=$(awk '/server:/ { print $2 }' "$KUBECONFIG_PATH" 2>/dev/null || true)
  if [ -z "$SERVER" ]; then
    echo "kube.sh: the sandbox did not start:" >&2
    cat "$WORK/$name.log" >&2
    exit 1
  fi
  echo "kube.sh: sandbox '$name' ($nodes nodes) on $SERVER, pid $SANDBOX_PID" >&2
}

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
# Runs one scenario in the background so that the EXIT trap can stop it
# (it stops the tool it is running when it gets SIGTERM).
bench() {
  local rc=0
  python3 bench/kube/bench.py "$1" --server "$SERVER" --kubeconfig "$KUBECONFIG_PATH" \
    --out "$RESULTS" --rounds "$ROUNDS" --squall "$SQUALL" --chaos "$CHAOS" --kubectl "$KUBECTL" "${@:2}" &
  BENCH_PID=$!
  wait "$BENCH_PID" || rc=$?
  BENCH_PID=
  return "$rc"
}

for scenario in $SCENARIOS; do
  case $scenario in
    pods)
      start_sandbox pods 3
      bench pods || echo "kube.sh: the pods scenario stopped early (see above)" >&2
      ;;
    drain)
      start_sandbox drain 2
      bench drain --pods "$DRAIN_PODS" || echo "kube.sh: the drain scenario stopped early (see above)" >&2
      ;;
    scale)
      start_sandbox scale "$SCALE_NODES"
      bench scale --deployments "$SCALE_DEPLOYMENTS" --replicas "$SCALE_REPLICAS" --wait "$SCALE_WAIT" ||
        echo "kube.sh: the scale scenario stopped early (see above)" >&2
      hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$SANDBOX_PID/status" 2>/dev/null || echo 0)
      echo "kube.sh: sandbox peak RSS during the scale scenario: $((hwm / 1024)) MiB" >&2
      ;;
    *) echo "kube.sh: unknown scenario '$scenario' (pods, drain, scale)" >&2; exit 2 ;;
  esac
  stop_sandbox
done

echo
python3 bench/kube/bench.py table "$RESULTS"
echo
echo "squall: $("$SQUALL" --version) ($OUT/squall, built $(date -r "$SQUALL" '+%F %T'))"
echo "chaos: $("$CHAOS" --version 2>/dev/null | head -1); chaostoolkit-lib $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("chaostoolkit-lib"))'); chaostoolkit-kubernetes $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("chaostoolkit-kubernetes"))') (kubernetes client $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes"))')); $("$VENV/bin/python" --version)"
echo "kubectl: $("$KUBECTL" version --client 2>/dev/null | head -1)"
echo "machine: $(nproc) cores, $(uname -sr)"
