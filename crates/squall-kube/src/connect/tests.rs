//! Lookup order and "where I looked" errors, with temporary kubeconfig files
//! and an injected environment (the process environment is never touched).

use super::*;

/// A kubeconfig with one cluster per context, each at its own port.
fn kubeconfig(contexts: &[(&str, u16)], current: Option<&str>) -> String {
    let mut s = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
    for (name, port) in contexts {
        s += &format!("- name: {name}\n  cluster:\n    server: http://127.0.0.1:{port}\n");
    }
    s += "contexts:\n";
    for (name, _) in contexts {
        s += &format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: u\n    namespace: ns-{name}\n"
        );
    }
    s += "users:\n- name: u\n  user: {}\n";
    if let Some(c) = current {
        s += &format!("current-context: {c}\n");
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn env(dir: &Path, vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars(vars.iter().copied(), dir.join("sa"))
}

fn port(config: &kube::Config) -> u16 {
    config.cluster_url.port_u16().unwrap()
}

#[tokio::test]
async fn explicit_kubeconfig_wins_over_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let explicit = write(
        dir.path(),
        "explicit",
        &kubeconfig(&[("a", 1001)], Some("a")),
    );
    let from_env = write(dir.path(), "env", &kubeconfig(&[("b", 1002)], Some("b")));
    let home = dir.path().join("home");
    write(
        &home,
        ".kube/config",
        &kubeconfig(&[("c", 1003)], Some("c")),
    );
    let e = env(
        dir.path(),
        &[
            ("KUBECONFIG", from_env.to_str().unwrap()),
            ("HOME", home.to_str().unwrap()),
        ],
    );
    let opts = ConnectOptions {
        kubeconfig: Some(explicit.clone()),
        context: None,
    };
    let (config, origin) = resolve(&opts, &e).await.unwrap();
    assert_eq!(port(&config), 1001);
    assert!(!config.default_retry, "429s must surface, not be retried");
    assert_eq!(config.default_namespace, "ns-a");
    assert_eq!(
        origin,
        Origin::Kubeconfig {
            paths: vec![explicit],
            context: "a".into()
        }
    );
}

#[tokio::test]
async fn kubeconfig_list_is_merged_and_home_is_not_consulted() {
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), "one", &kubeconfig(&[("a", 1001)], None));
    let two = write(dir.path(), "two", &kubeconfig(&[("b", 1002)], Some("b")));
    let missing = dir.path().join("missing");
    let home = dir.path().join("home");
    write(
        &home,
        ".kube/config",
        &kubeconfig(&[("c", 1003)], Some("c")),
    );
    let list = format!("{}:{}:{}", missing.display(), one.display(), two.display());
    let e = env(
        dir.path(),
        &[("KUBECONFIG", &list), ("HOME", home.to_str().unwrap())],
    );
    // current-context comes from the second file; a context from the first works too.
    let (config, _) = resolve(&ConnectOptions::default(), &e).await.unwrap();
    assert_eq!(port(&config), 1002);
    let opts = ConnectOptions {
        kubeconfig: None,
        context: Some("a".into()),
    };
    let (config, origin) = resolve(&opts, &e).await.unwrap();
    assert_eq!(port(&config), 1001);
    assert_eq!(
        origin,
        Origin::Kubeconfig {
            paths: vec![one, two],
            context: "a".into()
        }
    );
}

#[tokio::test]
async fn home_config_is_used_when_kubeconfig_is_unset() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let path = write(
        &home,
        ".kube/config",
        &kubeconfig(&[("c", 1003)], Some("c")),
    );
    let e = env(dir.path(), &[("HOME", home.to_str().unwrap())]);
    let kube = Kube::connect_in(&ConnectOptions::default(), &e)
        .await
        .unwrap();
    assert_eq!(
        kube.origin().to_string(),
        format!("context 'c' from config '{}'", path.display())
    );
}

#[tokio::test]
async fn in_cluster_needs_a_reason_and_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(dir.path(), &[("CHAOSTOOLKIT_IN_POD", "true")]);
    let err = resolve(&ConnectOptions::default(), &e).await.unwrap_err();
    let last = err.looked().last().unwrap();
    assert!(last.outcome.contains("token"), "{last}");
    write(dir.path(), "sa/token", "t0k3n");
    write(dir.path(), "sa/namespace", "chaos\n");
    let (config, origin) = resolve(&ConnectOptions::default(), &e).await.unwrap();
    assert_eq!(
        config.cluster_url.to_string(),
        "https://kubernetes.default.svc/"
    );
    assert_eq!(config.default_namespace, "chaos");
    assert!(!config.default_retry);
    assert!(matches!(origin, Origin::InCluster { .. }));
    let e = env(
        dir.path(),
        &[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "6443"),
        ],
    );
    let kube = Kube::connect_in(&ConnectOptions::default(), &e)
        .await
        .unwrap();
    assert_eq!(kube.origin().to_string(), "the in-cluster service account");
}

#[tokio::test]
async fn nothing_found_lists_every_place_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let e = env(dir.path(), &[("HOME", home.to_str().unwrap())]);
    let err = resolve(&ConnectOptions::default(), &e).await.unwrap_err();
    let text = err.to_string();
    let expected = format!(
        "no Kubernetes configuration found; looked at:\n  \
         - KUBECONFIG: environment variable not set\n  \
         - ~/.kube/config ({}/.kube/config): file does not exist\n  \
         - in-cluster service account ({}/sa): not in a pod (CHAOSTOOLKIT_IN_POD is not \"true\" and KUBERNETES_SERVICE_HOST is not set)",
        home.display(),
        dir.path().display()
    );
    assert_eq!(text, expected);
    assert!(!text.contains("localhost"));
}

#[tokio::test]
async fn kubeconfig_pointing_nowhere_is_reported_with_home_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = env(
        dir.path(),
        &[("KUBECONFIG", missing.to_str().unwrap()), ("HOME", "/h")],
    );
    let err = resolve(&ConnectOptions::default(), &e).await.unwrap_err();
    let places: Vec<_> = err.looked().iter().map(ToString::to_string).collect();
    assert_eq!(places.len(), 3, "{places:?}");
    assert_eq!(
        places[0],
        format!(
            "KUBECONFIG entry {}: file does not exist",
            missing.display()
        )
    );
    assert_eq!(
        places[1],
        "~/.kube/config: not consulted because KUBECONFIG is set"
    );
}

#[tokio::test]
async fn bad_explicit_path_or_context_stops_without_falling_back() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    write(
        &home,
        ".kube/config",
        &kubeconfig(&[("c", 1003)], Some("c")),
    );
    let e = env(dir.path(), &[("HOME", home.to_str().unwrap())]);
    let opts = ConnectOptions {
        kubeconfig: Some(dir.path().join("typo")),
        context: None,
    };
    let err = resolve(&opts, &e).await.unwrap_err();
    assert!(matches!(err, ConnectError::NotFound { .. }));
    assert!(
        err.to_string()
            .contains("(given explicitly): file does not exist")
    );
    let opts = ConnectOptions {
        kubeconfig: None,
        context: Some("prod".into()),
    };
    let err = resolve(&opts, &e).await.unwrap_err().to_string();
    assert!(
        err.contains("context 'prod' not found (contexts defined: c)"),
        "{err}"
    );
    let garbage = write(dir.path(), "garbage", "clusters: [[[");
    let opts = ConnectOptions {
        kubeconfig: Some(garbage),
        context: None,
    };
    assert!(matches!(
        resolve(&opts, &e).await.unwrap_err(),
        ConnectError::Invalid { .. }
    ));
}

#[tokio::test]
async fn a_context_cannot_be_satisfied_in_cluster() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "sa/token", "t");
    let e = env(dir.path(), &[("CHAOSTOOLKIT_IN_POD", "true")]);
    let opts = ConnectOptions {
        kubeconfig: None,
        context: Some("prod".into()),
    };
    let err = resolve(&opts, &e).await.unwrap_err().to_string();
    assert!(err.contains("context 'prod' was asked for"), "{err}");
}

#[test]
fn missing_handle_is_fatal() {
    struct Quiet;
    impl squall_activity::RunLog for Quiet {
        fn debug(&self, _: &str) {}
        fn info(&self, _: &str) {}
        fn warning(&self, _: &str) {}
    }
    let ctx = ActivityCtx {
        configuration: Default::default(),
        secrets: Default::default(),
        ledger: Arc::new(crate::testkit::MemLedger::default()),
        run_id: "r".into(),
        log: Arc::new(Quiet),
        limits: Default::default(),
        events: Default::default(),
        services: Default::default(),
        dry: false,
    };
    let err = kube(&ctx).unwrap_err();
    assert!(matches!(err, ActivityError::Fatal(ref m) if m.contains("no Kubernetes connection")));
}

#[tokio::test]
async fn kubernetes_context_variable_chooses_unless_the_option_does() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let two = kubeconfig(&[("a", 1001), ("b", 1002)], Some("a"));
    write(&home, ".kube/config", &two);
    let e = env(
        dir.path(),
        &[
            ("HOME", home.to_str().unwrap()),
            ("KUBERNETES_CONTEXT", "b"),
        ],
    );
    let (config, _) = resolve(&ConnectOptions::default(), &e).await.unwrap();
    assert_eq!(port(&config), 1002);
    let opts = ConnectOptions {
        kubeconfig: None,
        context: Some("a".into()),
    };
    let (config, _) = resolve(&opts, &e).await.unwrap();
    assert_eq!(port(&config), 1001);
}

#[test]
fn the_default_environment_uses_the_standard_service_account_dir() {
    let e = Environment::default();
    assert_eq!(e.service_account_dir, Path::new(SERVICE_ACCOUNT_DIR));
    assert_eq!(e.var("HOME"), None);
}
