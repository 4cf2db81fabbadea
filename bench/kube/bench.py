#!/usr/bin/env python3
"""The scenarios of bench/kube.sh: squall, Chaos Toolkit (with the upstream
chaostoolkit-kubernetes plugin) and kubectl against one running
`squall sandbox serve`, each round from the same state.

    bench.py pods  --server URL --kubeconfig PATH --out RESULTS ...
    bench.py drain --server URL --kubeconfig PATH --out RESULTS ...
    bench.py scale --server URL --kubeconfig PATH --out RESULTS ...
    bench.py table RESULTS

Each scenario appends one JSON line per row to RESULTS; `table` prints
them as markdown. Wall time is taken as bench/measure.py does (around
subprocess.run, microsecond resolution, in its own rounds); peak RSS in
separate rounds through /usr/bin/time (a child of this Python process would
report the interpreter's pre-exec resident set). Every round is checked
(exit code, journal status, and the cluster afterwards); a round that did
not do its job is left out of the median and reported.

Standard library only. Every wait is bounded in time."""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

RUN_TIMEOUT = 300  # seconds; one tool run (the drain experiment's own timeout is 120)
HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(f"[kube-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# A minimal client for the sandbox's API (JSON over plain HTTP on loopback).

class Api:
    def __init__(self, server):
        self.server = server.rstrip("/")

    def call(self, method, path, body=None, ctype="application/json", timeout=120):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def ok(self, method, path, body=None, ctype="application/json"):
        status, out = self.call(method, path, body, ctype)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {out}")
        return out

    def get(self, path):
        return self.ok("GET", path)

    def pods(self, ns=None, labels=None, fields=None):
        q = {}
        if labels:
            q["labelSelector"] = labels
        if fields:
            q["fieldSelector"] = fields
        base = f"/api/v1/namespaces/{ns}/pods" if ns else "/api/v1/pods"
        return self.get(base + ("?" + urllib.parse.urlencode(q) if q else ""))["items"]

    def merge_patch(self, path, body):
        return self.ok("PATCH", path, body, "application/merge-patch+json")

    def ensure_namespace(self, name):
        status, out = self.call("POST", "/api/v1/namespaces",
                                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        if status not in (201, 409):
            raise RuntimeError(f"create namespace {name}: {status} {out}")


def wait_until(what, fn, timeout, interval=0.2):
    """Calls fn until it returns something truthy; at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def running_ready(pod):
    if pod["metadata"].get("deletionTimestamp") or pod.get("status", {}).get("phase") != "Running":
        return False
    conds = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def deployment(name, ns, replicas, labels):
    spec = {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": labels["app"]}},
                 "template": {"metadata": {"labels": dict(labels)}, "spec": spec}},
    }


def create_or_replace_deployment(api, dep):
    ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
    status, out = api.call("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", dep)
    if status == 409:
        return
    if status != 201:
        raise RuntimeError(f"create deployment {ns}/{name}: {status} {out}")


# ---------------------------------------------------------------------------
# Tools and measurement.

class Tool:
    def __init__(self, name, argv, kind):
        self.name, self.argv, self.kind = name, argv, kind  # kind: experiment | command


def journal_problem(path):
    """Why a run's journal does not show a clean completed run, or None."""
    try:
        with open(path) as f:
            j = json.load(f)
    except (OSError, ValueError) as e:
        return f"no journal ({e.__class__.__name__})"
    if j.get("status") != "completed":
        return f"journal status {j.get('status')}"
    if j.get("deviated"):
        return "deviated"
    for r in j.get("run") or []:
        if r.get("status") != "succeeded":
            exc = r.get("exception") or []
            last = (exc[-1] if exc else "").strip().splitlines()
            name = (r.get("activity") or {}).get("name")
            return f"{name}: {r.get('status')}: {last[0] if last else ''}"[:300]
    return None


def journal_outputs(path):
    with open(path) as f:
        return [r.get("output") for r in json.load(f).get("run") or []]


def run_once(tool, ctx, phase, work, env):
    """Runs one round; returns (seconds or KiB, rc, journal path, stdout path)."""
    journal = os.path.join(work, "journal.json")
    for stale in os.listdir(work):
        p = os.path.join(work, stale)
        if os.path.isfile(p):
            os.unlink(p)
    argv = tool.argv(ctx, journal)
    out_path, err_path = os.path.join(work, "stdout"), os.path.join(work, "stderr")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        if phase == "wall":
            start = time.perf_counter()
            try:
                rc = subprocess.run(argv, stdout=out, stderr=err, cwd=work, env=env,
                                    timeout=RUN_TIMEOUT, check=False).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            value = time.perf_counter() - start
        else:
            peak = os.path.join(work, "peak")
            try:
                rc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", peak, *argv],
                                    stdout=out, stderr=err, cwd=work, env=env,
                                    timeout=RUN_TIMEOUT, check=False).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            try:
                with open(peak) as f:
                    value = int(f.read().strip().splitlines()[-1])
            except (OSError, ValueError, IndexError):
                value = None
    return value, rc, journal, out_path, err_path


def measure(scenario, tools, setup, check, rounds, env, out_file, note=""):
    """Rounds interleave the tools (squall, chaos, kubectl, squall, ...) so
    that a slow spell of this shared machine does not land on one tool."""
    res = {t.name: {"wall": [], "rss": [], "problems": []} for t in tools}
    work = tempfile.mkdtemp(prefix="kube-bench-")
    try:
        for phase in ("wall", "rss"):
            for r in range(rounds):
                for tool in tools:
                    ctx = setup()
                    value, rc, journal, out_path, err_path = run_once(tool, ctx, phase, work, env)
                    problem = None
                    if rc != 0:
                        with open(err_path) as f:
                            tail = f.read().strip().splitlines()[-1:]
                        problem = f"exit {rc}: {tail[0][:200] if tail else ''}"
                    if problem is None and tool.kind == "experiment":
                        problem = journal_problem(journal)
                    if problem is None:
                        problem = check(tool, ctx, journal, out_path)
                    tag = f"{scenario} / {tool.name} / {phase} round {r + 1}"
                    if problem:
                        log(f"{tag}: NOT COUNTED: {problem}")
                        res[tool.name]["problems"].append(problem)
                    else:
                        shown = f"{value:.4f} s" if phase == "wall" else f"{value} KiB"
                        log(f"{tag}: {shown}")
                        if value is not None:
                            res[tool.name][phase].append(value)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row = {"scenario": scenario, "rounds": rounds, "note": note, "tools": {}}
    for name, r in res.items():
        row["tools"][name] = {
            "wall": statistics.median(r["wall"]) if r["wall"] else None,
            "rss_kib": statistics.median(r["rss"]) if r["rss"] else None,
            "ok": len(r["wall"]) + len(r["rss"]),
            "runs": 2 * rounds,
            "problems": sorted(set(r["problems"])),
        }
    with open(out_file, "a") as f:
        f.write(json.dumps(row) + "\n")


def make_tools(args, experiment, var=None, kubectl=None):
    """squall and chaos running `experiment`; kubectl running `kubectl(ctx)` if given.
    `var(ctx)` gives NAME=VALUE configuration for both runners."""
    def extra(ctx):
        return ["--var", var(ctx)] if var else []

    tools = [
        Tool("squall", lambda ctx, j: [args.squall, "--no-log-file", "run", experiment,
                                       "--journal-path", j, *extra(ctx)], "experiment"),
        Tool("chaos", lambda ctx, j: [args.chaos, "--no-version-check", "--no-log-file", "run",
                                      experiment, "--journal-path", j, *extra(ctx)], "experiment"),
    ]
    if kubectl:
        tools.append(Tool("kubectl", lambda ctx, j: kubectl(ctx), "command"))
    return tools


# ---------------------------------------------------------------------------
# 1. The book's pod experiments and a probe experiment.

GO_DEMO_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "go-demo-8", "namespace": "go-demo-8", "labels": {"app": "go-demo-8"}},
    "spec": {"containers": [{"name": "go-demo-8", "image": "vfarcic/go-demo-8:0.0.1",
                             "ports": [{"containerPort": 8080}]}]},
}


def scenario_pods(args, api, env):
    repo = os.path.dirname(os.path.dirname(HERE))
    api.ensure_namespace("go-demo-8")
    pod_path = "/api/v1/namespaces/go-demo-8/pods/go-demo-8"

    def fresh_pod():
        # Gone at once (grace 0) whatever state the last round left it in,
        # then created again and Running before the round starts.
        api.call("DELETE", pod_path, {"gracePeriodSeconds": 0})
        wait_until("pod go-demo-8 to be gone", lambda: api.call("GET", pod_path)[0] == 404, 30)
        api.ok("POST", "/api/v1/namespaces/go-demo-8/pods", GO_DEMO_POD)
        wait_until("pod go-demo-8 Running and Ready", lambda: running_ready(api.get(pod_path)), 60)
        return {}

    def terminated(tool, ctx, journal, out):
        status, pod = api.call("GET", pod_path)
        if status == 404 or (status == 200 and pod["metadata"].get("deletionTimestamp")):
            return None
        return "pod go-demo-8 was not terminated"

    for name in ("terminate-pod", "terminate-pod-ssh"):
        exp = os.path.join(repo, "examples", "book", f"{name}.yaml")
        log(f"scenario {name}")
        measure(f"{name}.yaml (1 pod)", make_tools(args, exp), fresh_pod, terminated,
                args.rounds, env, args.out)
    api.call("DELETE", pod_path, {"gracePeriodSeconds": 0})

    # The probe experiment: 10 Running pods, read only.
    api.ensure_namespace("probes")
    create_or_replace_deployment(api, deployment("probe-web", "probes", 10, {"app": "probe-web"}))

    def ten_ready():
        wait_until("10 probe-web pods Running and Ready",
                   lambda: sum(map(running_ready, api.pods("probes", "app=probe-web"))) == 10
                   and len(api.pods("probes", "app=probe-web")) == 10, 120)
        return {}

    def counted_ten(tool, ctx, journal, out):
        outputs = journal_outputs(journal)
        return None if outputs == [10] else f"method output {outputs}, expected [10]"

    log("scenario pod-probes")
    measure("pod-probes.yaml (count_pods, pods_in_phase; 10 pods)",
            make_tools(args, os.path.join(HERE, "pod-probes.yaml")), ten_ready, counted_ten,
            args.rounds, env, args.out)


# ---------------------------------------------------------------------------
# 2. Draining a node that holds 110 pods.

def scenario_drain(args, api, env):
    n = args.pods
    nodes = sorted(x["metadata"]["name"] for x in api.get("/api/v1/nodes")["items"])
    if len(nodes) != 2:
        raise RuntimeError(f"the drain scenario wants a 2-node sandbox, got {nodes}")

    def schedulable(node, yes):
        api.merge_patch(f"/api/v1/nodes/{node}", {"spec": {"unschedulable": None if yes else True}})

    # All the pods on nodes[0]: the other node is cordoned while they are created.
    schedulable(nodes[1], False)
    create_or_replace_deployment(api, deployment("drain-web", "default", n, {"app": "drain-web"}))

    def placement():
        pods = api.pods("default", "app=drain-web")
        if len(pods) != n or not all(map(running_ready, pods)):
            return None
        per = {}
        for p in pods:
            per[p["spec"]["nodeName"]] = per.get(p["spec"]["nodeName"], 0) + 1
        return per

    def settle():
        """Both nodes schedulable, all n pods Running and Ready on one node."""
        per = wait_until(f"{n} drain-web pods Running and Ready", placement, 180)
        if len(per) > 1:
            # A round that did not finish left pods on both nodes: move them
            # all to the fuller node (not timed).
            full = max(per, key=per.get)
            other = next(x for x in nodes if x != full)
            log(f"drain: pods on both nodes {per}; moving them to {full}")
            schedulable(other, False)
            for p in api.pods("default", "app=drain-web", f"spec.nodeName={other}"):
                api.call("DELETE", f"/api/v1/namespaces/default/pods/{p['metadata']['name']}",
                         {"gracePeriodSeconds": 0})
            per = wait_until(f"{n} drain-web pods on {full}",
                             lambda: (lambda q: q if q and len(q) == 1 else None)(placement()), 180)
        for node in nodes:
            schedulable(node, True)
        target = next(iter(per))
        return {"node": target}

    def drained(tool, ctx, journal, out):
        left = api.pods(None, None, f"spec.nodeName={ctx['node']}")
        if left:
            return f"{len(left)} pods still on {ctx['node']} after the run"
        if not api.get(f"/api/v1/nodes/{ctx['node']}")["spec"].get("unschedulable"):
            return f"{ctx['node']} is not cordoned after the run"
        return None

    kubectl = lambda ctx: [args.kubectl, "--kubeconfig", args.kubeconfig, "drain", ctx["node"],
                           "--ignore-daemonsets", "--delete-emptydir-data", "--force"]
    tools = make_tools(args, os.path.join(HERE, "drain.yaml"), lambda ctx: f"node={ctx['node']}", kubectl)
    log(f"scenario drain ({n} pods)")
    measure(f"drain a node with {n} pods", tools, settle, drained, args.rounds, env, args.out)
    settle()


# ---------------------------------------------------------------------------
# 3. count_pods over 10,000 pods.

def scenario_scale(args, api, env):
    deps, replicas, budget = args.deployments, args.replicas, args.wait
    for i in range(deps):
        create_or_replace_deployment(api, deployment(f"web-{i}", "default", replicas,
                                                     {"app": f"web-{i}", "tier": "scale"}))
    note = ""
    while True:
        total = deps * replicas
        start = time.monotonic()

        def converged():
            items = api.get("/apis/apps/v1/namespaces/default/deployments")["items"]
            ready = sum((d.get("status") or {}).get("readyReplicas") or 0
                        for d in items if d["metadata"]["name"].startswith("web-"))
            return ready >= total and len(api.pods("default", "tier=scale")) == total
        try:
            wait_until(f"{total} pods Ready", converged, budget, interval=2)
            log(f"scale: {total} pods Running and Ready after {time.monotonic() - start:.0f} s")
            break
        except TimeoutError:
            running = sum(map(running_ready, api.pods("default", "tier=scale")))
            if replicas <= 1 or total <= 1000:
                raise
            log(f"scale: only {running} of {total} pods Ready after {budget} s; halving the replicas")
            note = f"10,000 pods not reached within {budget} s ({running} Ready); measured at a smaller size"
            replicas //= 2
            for i in range(deps):
                api.merge_patch(f"/apis/apps/v1/namespaces/default/deployments/web-{i}",
                                {"spec": {"replicas": replicas}})

    def unchanged():
        return {"total": total}

    def counted(tool, ctx, journal, out):
        if tool.kind == "experiment":
            got = journal_outputs(journal)
            return None if got == [total] else f"count_pods returned {got}, expected [{total}]"
        with open(out) as f:
            got = f.read().strip()
        return None if got == str(total) else f"kubectl listed {got} pods, expected {total}"

    kubectl = lambda ctx: ["/bin/sh", "-c", f"'{args.kubectl}' --kubeconfig '{args.kubeconfig}' "
                           "get pods -A --no-headers | wc -l"]
    tools = make_tools(args, os.path.join(HERE, "count-pods.yaml"), None, kubectl)
    log(f"scenario count_pods over {total} pods")
    measure(f"count_pods over {total:,} pods", tools, unchanged, counted, args.rounds, env, args.out, note)


# ---------------------------------------------------------------------------
# The table.

def table(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]

    def cell(t, key, scale=1.0, fmt="{:.3f}"):
        if t is None:
            return "—"
        v = t.get(key)
        if v is None:
            return f"failed ({t['runs'] - t['ok']}/{t['runs']} runs)"
        s = fmt.format(v * scale)
        return s + (f" ({t['runs'] - t['ok']}/{t['runs']} runs failed)" if t["ok"] < t["runs"] else "")

    def ratio(a, b, key):
        if not a or not b or a.get(key) is None or b.get(key) is None or a[key] == 0:
            return "—"
        return f"{b[key] / a[key]:.1f}x"

    print("| scenario | squall (s) | chaos (s) | kubectl (s) | squall speed-up vs chaos | squall vs kubectl |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        t = r["tools"]
        s, c, k = t.get("squall"), t.get("chaos"), t.get("kubectl")
        print(f"| {r['scenario']} | {cell(s, 'wall')} | {cell(c, 'wall')} | {cell(k, 'wall')} | "
              f"{ratio(s, c, 'wall')} | {ratio(s, k, 'wall')} |")
    print()
    print("Peak RSS (MiB, median, /usr/bin/time):")
    print()
    print("| scenario | squall | chaos | kubectl | chaos / squall | kubectl / squall |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        t = r["tools"]
        s, c, k = t.get("squall"), t.get("chaos"), t.get("kubectl")
        f = "{:.1f}"
        print(f"| {r['scenario']} | {cell(s, 'rss_kib', 1 / 1024, f)} | {cell(c, 'rss_kib', 1 / 1024, f)} | "
              f"{cell(k, 'rss_kib', 1 / 1024, f)} | {ratio(s, c, 'rss_kib')} | {ratio(s, k, 'rss_kib')} |")
    print()
    rounds = sorted({r["rounds"] for r in rows})
    print(f"(median of {', '.join(map(str, rounds))} rounds per tool for wall time and again for peak RSS; "
          "\"squall vs kubectl\" is kubectl's time / squall's, so above 1x squall is faster; "
          "— means no kubectl equivalent)")
    for r in rows:
        if r.get("note"):
            print(f"- {r['scenario']}: {r['note']}")
        for name, t in r["tools"].items():
            for p in t["problems"]:
                print(f"- {r['scenario']} / {name}: rounds not counted: {p}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["pods", "drain", "scale", "table"])
    p.add_argument("results", nargs="?")
    p.add_argument("--server")
    p.add_argument("--kubeconfig")
    p.add_argument("--out")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--squall")
    p.add_argument("--chaos")
    p.add_argument("--kubectl")
    p.add_argument("--pods", type=int, default=110, help="drain: pods on the drained node")
    p.add_argument("--deployments", type=int, default=100, help="scale: Deployments")
    p.add_argument("--replicas", type=int, default=100, help="scale: replicas of each")
    p.add_argument("--wait", type=int, default=300, help="scale: seconds to wait for the pods")
    args = p.parse_args()
    # subprocess.run kills the running tool when this exception goes through it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.scenario == "table":
        table(args.results)
        return
    env = dict(os.environ, KUBECONFIG=args.kubeconfig)
    api = Api(args.server)
    {"pods": scenario_pods, "drain": scenario_drain, "scale": scenario_scale}[args.scenario](args, api, env)


if __name__ == "__main__":
    main()
