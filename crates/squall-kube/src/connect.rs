//! The connection to the cluster: [`Kube`] is the handle the binary puts
//! into [`squall_activity::Services`] and every Kubernetes activity takes
//! out again with [`kube()`]. [`Kube::connect`] finds the configuration the
//! way `kubectl` and chaosk8s do (an explicit kubeconfig, `KUBECONFIG`,
//! `~/.kube/config`, the in-cluster service account), chooses the context,
//! and turns off kube-rs's default retry so a PodDisruptionBudget refusal
//! (429) surfaces at once. When nothing is found the error lists every
//! place looked at and why it did not serve; it never falls back to
//! `localhost` the way the Python client does. The environment is an
//! explicit [`Environment`] value so tests never touch the process
//! environment.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};
use squall_activity::{ActivityCtx, ActivityError};

/// Where the service-account credentials are mounted in a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the user asked for on the command line or in settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// A kubeconfig file to use instead of `KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use instead of the file's `current-context`.
    pub context: Option<String>,
}

/// The environment the lookup reads: variables and the service-account
/// directory. [`Environment::process`] reads the real one.
#[derive(Clone, Debug)]
pub struct Environment {
    vars: HashMap<String, String>,
    service_account_dir: PathBuf,
}

impl Default for Environment {
    /// No variables, and the standard service-account directory.
    fn default() -> Self {
        Self {
            vars: HashMap::new(),
            service_account_dir: PathBuf::from(SERVICE_ACCOUNT_DIR),
        }
    }
}

const VARS: [&str; 6] = [
    "KUBECONFIG",
    "KUBERNETES_CONTEXT",
    "HOME",
    "CHAOSTOOLKIT_IN_POD",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
];

impl Environment {
    /// The process environment and the standard service-account directory.
    pub fn process() -> Self {
        let vars = VARS
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
            .collect();
        Self {
            vars,
            service_account_dir: PathBuf::from(SERVICE_ACCOUNT_DIR),
        }
    }

    /// An environment with exactly these variables (for tests and embedding).
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
        service_account_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            service_account_dir: service_account_dir.into(),
        }
    }

    /// A variable, with empty values treated as unset.
    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// One place the lookup looked at, and what it found there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Looked {
    pub place: String,
    pub outcome: String,
}

impl fmt::Display for Looked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.outcome)
    }
}

fn list(looked: &[Looked]) -> String {
    looked.iter().map(|l| format!("\n  - {l}")).collect()
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No configuration anywhere.
    #[error("no Kubernetes configuration found; looked at:{}", list(.looked))]
    NotFound { looked: Vec<Looked> },
    /// A configuration was found but cannot be used. squall does not try
    /// the next place: that could reach a different cluster.
    #[error("cannot use the Kubernetes configuration from {place}: {reason}; looked at:{}", list(.looked))]
    Invalid {
        place: String,
        reason: String,
        looked: Vec<Looked>,
    },
    /// The client for a recorded connection cannot be rebuilt.
    #[error("cannot reconnect to the cluster: {0}")]
    Reconnect(String),
}

impl ConnectError {
    /// Every place looked at, in order.
    pub fn looked(&self) -> &[Looked] {
        match self {
            Self::NotFound { looked } | Self::Invalid { looked, .. } => looked,
            Self::Reconnect(_) => &[],
        }
    }
}

/// Where a [`Kube`] came from, recorded in undo data so `squall recover`
/// reaches the same cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Origin {
    /// Kubeconfig file(s), merged in order, and the context used.
    Kubeconfig {
        paths: Vec<PathBuf>,
        context: String,
    },
    /// The in-cluster service account.
    InCluster { service_account_dir: PathBuf },
    /// A client built by the caller ([`Kube::from_client`]).
    Client,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kubeconfig { paths, context } => {
                let p: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "context '{context}' from config '{}'", p.join(":"))
            }
            Self::InCluster { .. } => f.write_str("the in-cluster service account"),
            Self::Client => f.write_str("a client supplied by the caller"),
        }
    }
}

/// The Kubernetes connection the activities share.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    origin: Origin,
}

impl fmt::Debug for Kube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kube({})", self.origin)
    }
}

impl Kube {
    /// Wraps a client built elsewhere (tests: a client on the simulator).
    pub fn from_client(client: kube::Client) -> Self {
        Self {
            client,
            origin: Origin::Client,
        }
    }

    /// Finds the configuration in the process environment and builds a
    /// client. Must run inside a tokio runtime.
    pub async fn connect(options: ConnectOptions) -> Result<Self, ConnectError> {
        Self::connect_in(&options, &Environment::process()).await
    }

    /// [`Kube::connect`] with an explicit environment.
    pub async fn connect_in(
        options: &ConnectOptions,
        env: &Environment,
    ) -> Result<Self, ConnectError> {
        let (config, origin) = resolve(options, env).await?;
        let client = kube::Client::try_from(config).map_err(|e| ConnectError::Invalid {
            place: origin.to_string(),
            reason: format!("cannot build a client: {e}"),
            looked: Vec::new(),
        })?;
        Ok(Self { client, origin })
    }

    /// Rebuilds the connection recorded in an undo, for `squall recover`.
    pub async fn reconnect(origin: &Origin) -> Result<Self, ConnectError> {
        let config = match origin {
            Origin::Kubeconfig { paths, context } => {
                load_files(paths, Some(context), "the recorded kubeconfig", Vec::new())
                    .await
                    .map_err(|e| ConnectError::Reconnect(e.to_string()))?
                    .0
            }
            Origin::InCluster {
                service_account_dir,
            } => {
                let mut env = Environment::process();
                env.service_account_dir.clone_from(service_account_dir);
                in_cluster(&env).map_err(ConnectError::Reconnect)?
            }
            Origin::Client => {
                return Err(ConnectError::Reconnect(
                    "the change was made through a client supplied by the caller, \
                     with no connection details recorded"
                        .into(),
                ));
            }
        };
        let client = kube::Client::try_from(config)
            .map_err(|e| ConnectError::Reconnect(format!("cannot build a client: {e}")))?;
        Ok(Self {
            client,
            origin: origin.clone(),
        })
    }

    /// A client (cheap to clone: it shares the connection pool).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Where the configuration came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

/// The [`Kube`] handle of the run, or a fatal error saying it is missing.
pub fn kube(ctx: &ActivityCtx) -> Result<Arc<Kube>, ActivityError> {
    ctx.services.get::<Kube>().ok_or_else(|| {
        ActivityError::Fatal(
            "no Kubernetes connection: the run has no squall_kube::Kube in its services \
             (the binary must connect before running Kubernetes activities)"
                .into(),
        )
    })
}

/// Finds the configuration: the explicit file, else `KUBECONFIG`, else
/// `~/.kube/config`, else the in-cluster service account.
pub async fn resolve(
    options: &ConnectOptions,
    env: &Environment,
) -> Result<(kube::Config, Origin), ConnectError> {
    // chaosk8s reads the context from KUBERNETES_CONTEXT; an explicit option wins.
    let ctx = options
        .context
        .as_deref()
        .or_else(|| env.var("KUBERNETES_CONTEXT"));
    if let Some(path) = &options.kubeconfig {
        // Absolute, so an undo that records it still works from another directory.
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let place = format!("kubeconfig {} (given explicitly)", path.display());
        if !path.is_file() {
            let looked = vec![looked(&place, "file does not exist")];
            return Err(ConnectError::NotFound { looked });
        }
        return load_files(std::slice::from_ref(path), ctx, &place, Vec::new()).await;
    }
    let mut seen = Vec::new();
    let files = kubeconfig_files(env, &mut seen);
    if !files.is_empty() {
        let names: Vec<_> = files.iter().map(|p| p.display().to_string()).collect();
        return load_files(&files, ctx, &names.join(":"), seen).await;
    }
    in_cluster_lookup(options, env, seen)
}

fn looked(place: &str, outcome: &str) -> Looked {
    Looked {
        place: place.to_owned(),
        outcome: outcome.to_owned(),
    }
}

/// The kubeconfig files that exist, recording every one looked at.
fn kubeconfig_files(env: &Environment, seen: &mut Vec<Looked>) -> Vec<PathBuf> {
    let home_place = "~/.kube/config";
    if let Some(value) = env.var("KUBECONFIG") {
        let mut found = Vec::new();
        for p in std::env::split_paths(value).filter(|p| !p.as_os_str().is_empty()) {
            let place = format!("KUBECONFIG entry {}", p.display());
            if p.is_file() {
                found.push(std::path::absolute(&p).unwrap_or(p));
            } else {
                seen.push(looked(&place, "file does not exist"));
            }
        }
        if found.is_empty() {
            seen.push(looked(
                home_place,
                "not consulted because KUBECONFIG is set",
            ));
        }
        return found;
    }
    seen.push(looked("KUBECONFIG", "environment variable not set"));
    let Some(home) = env.var("HOME") else {
        seen.push(looked(home_place, "HOME is not set"));
        return Vec::new();
    };
    let path = Path::new(home).join(".kube").join("config");
    if path.is_file() {
        return vec![path];
    }
    let place = format!("{home_place} ({})", path.display());
    seen.push(looked(&place, "file does not exist"));
    Vec::new()
}

/// Reads and merges kubeconfig files and builds a config for the context.
async fn load_files(
    paths: &[PathBuf],
    context: Option<&str>,
    place: &str,
    seen: Vec<Looked>,
) -> Result<(kube::Config, Origin), ConnectError> {
    let invalid = |reason: String, seen: Vec<Looked>| ConnectError::Invalid {
        place: place.to_owned(),
        reason,
        looked: seen,
    };
    let mut merged = Kubeconfig::default();
    for p in paths {
        let kc = match Kubeconfig::read_from(p) {
            Ok(kc) => kc,
            Err(e) => return Err(invalid(format!("{}: {e}", p.display()), seen)),
        };
        merged = match merged.merge(kc) {
            Ok(m) => m,
            Err(e) => return Err(invalid(e.to_string(), seen)),
        };
    }
    let name = match pick_context(&merged, context) {
        Ok(name) => name,
        Err(reason) => return Err(invalid(reason, seen)),
    };
    let opts = KubeConfigOptions {
        context: Some(name.clone()),
        ..KubeConfigOptions::default()
    };
    match kube::Config::from_custom_kubeconfig(merged, &opts).await {
        Ok(mut config) => {
            config.default_retry = false;
            let origin = Origin::Kubeconfig {
                paths: paths.to_vec(),
                context: name,
            };
            Ok((config, origin))
        }
        Err(e) => Err(invalid(format!("context '{name}': {e}"), seen)),
    }
}

/// The context to use: the one asked for, else `current-context`; it must exist.
fn pick_context(kc: &Kubeconfig, wanted: Option<&str>) -> Result<String, String> {
    let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    let available = if names.is_empty() {
        "the file defines no contexts".to_owned()
    } else {
        format!("contexts defined: {}", names.join(", "))
    };
    let name = match (wanted, kc.current_context.as_deref()) {
        (Some(w), _) => w,
        (None, Some(c)) if !c.is_empty() => c,
        (None, _) => {
            return Err(format!(
                "no context given and no current-context set ({available})"
            ));
        }
    };
    if names.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(format!("context '{name}' not found ({available})"))
    }
}

/// The in-cluster branch: only when asked for (`CHAOSTOOLKIT_IN_POD=true`)
/// or when running in a pod (`KUBERNETES_SERVICE_HOST`), and only with a token.
fn in_cluster_lookup(
    options: &ConnectOptions,
    env: &Environment,
    mut seen: Vec<Looked>,
) -> Result<(kube::Config, Origin), ConnectError> {
    let place = format!(
        "in-cluster service account ({})",
        env.service_account_dir.display()
    );
    let in_pod = env.var("CHAOSTOOLKIT_IN_POD") == Some("true");
    if !in_pod && env.var("KUBERNETES_SERVICE_HOST").is_none() {
        let why = "not in a pod (CHAOSTOOLKIT_IN_POD is not \"true\" and KUBERNETES_SERVICE_HOST is not set)";
        seen.push(looked(&place, why));
        return Err(ConnectError::NotFound { looked: seen });
    }
    let config = match in_cluster(env) {
        Ok(config) => config,
        Err(why) => {
            seen.push(looked(&place, &why));
            return Err(ConnectError::NotFound { looked: seen });
        }
    };
    if let Some(c) = options.context.as_deref().or(env.var("KUBERNETES_CONTEXT")) {
        let reason = format!("context '{c}' was asked for, but no kubeconfig file was found");
        return Err(ConnectError::Invalid {
            place,
            reason,
            looked: seen,
        });
    }
    let origin = Origin::InCluster {
        service_account_dir: env.service_account_dir.clone(),
    };
    Ok((config, origin))
}

/// A config for the service account in `env`'s directory.
fn in_cluster(env: &Environment) -> Result<kube::Config, String> {
    let dir = &env.service_account_dir;
    let token = dir.join("token");
    if !token.is_file() {
        return Err(format!("token file {} does not exist", token.display()));
    }
    let host = env.var("KUBERNETES_SERVICE_HOST");
    let port = env.var("KUBERNETES_SERVICE_PORT").unwrap_or("443");
    let url = match host {
        Some(h) if h.contains(':') => format!("https://[{h}]:{port}"),
        Some(h) => format!("https://{h}:{port}"),
        None => "https://kubernetes.default.svc".to_owned(),
    };
    let uri = url
        .parse::<http::Uri>()
        .map_err(|e| format!("bad API server address {url}: {e}"))?;
    let mut config = kube::Config::new(uri);
    config.default_retry = false;
    config.auth_info.token_file = Some(token.display().to_string());
    let ca = dir.join("ca.crt");
    if ca.is_file() {
        config.root_cert_file = Some(ca);
    }
    if let Ok(ns) = std::fs::read_to_string(dir.join("namespace")) {
        config.default_namespace = ns.trim().to_owned();
    }
    Ok(config)
}

#[cfg(test)]
mod tests;
