//! `squall sandbox serve`: a simulated cluster reachable over HTTP with the
//! kubeconfig it writes, stopped cleanly by SIGINT.

mod common;

use common::{Run, Sandbox};

fn get(server: &str, path: &str) -> String {
    common::http(server, "GET", path, "")
}

#[test]
fn serves_the_api_with_a_kubeconfig_until_sigint() {
    let sb = Sandbox::new();
    let (child, server) = common::start_sandbox(
        &sb,
        &[
            "sandbox",
            "serve",
            "--kubeconfig",
            "kube.yaml",
            "--nodes",
            "2",
        ],
    );
    let nodes = get(&server, "/api/v1/nodes");
    assert!(nodes.starts_with("HTTP/1.1 200"), "{nodes}");
    assert!(
        nodes.contains("\"node-1\"")
            && nodes.contains("\"node-2\"")
            && !nodes.contains("\"node-3\"")
    );
    let missing = get(&server, "/api/v1/namespaces/default/pods/nope");
    assert!(
        missing.starts_with("HTTP/1.1 404") && missing.contains("\"reason\":\"NotFound\""),
        "{missing}"
    );
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    run.code(0)
        .has("Simulated cluster with 2 node(s) serving on http://127.0.0.1:")
        .has("Sandbox stopped");
    assert!(run.stdout.contains("export KUBECONFIG=kube.yaml"));
    assert!(run.stdout.contains("export INGRESS_HOST=127.0.0.1:"));
}

#[test]
fn process_runtime_flags_are_checked_before_anything_starts() {
    let sb = Sandbox::new();
    let serve = |extra: &[&str]| -> Run {
        let mut args = vec!["sandbox", "serve", "--kubeconfig", "kube.yaml"];
        args.extend_from_slice(extra);
        sb.run(&args)
    };
    serve(&["--node-netns", "node-1=lab"])
        .code(2)
        .has("--node-netns needs --run-image");
    serve(&["--run-image", "squall:dev=/nonexistent/squall"])
        .code(2)
        .has("/nonexistent/squall is not a file");
    serve(&["--run-image", "squall:dev"])
        .code(2)
        .has("expected IMAGE=PATH");
    assert!(!sb.path("kube.yaml").exists(), "a kubeconfig was written");
}
