//! The `cordon` command line: parse, run, map the outcome to an exit code.
//!
//! Exit codes: 0 success; 1 the connector ran and failed; 2 bad usage, bad input or a
//! connector that cannot be loaded.

mod secrets;
mod upgrades;
mod workflow;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use crate::grant::{Grant, SecretGrant};
use crate::host_pattern::HostPattern;
use crate::ids::{ConnectionName, SecretName};
use crate::secrets::{SecretLocation, SecretMap};
use crate::{CallInfo, ConnectionConfig, Connector, Runtime, RuntimeConfig, builtin};

#[derive(Debug, Parser)]
#[command(
    name = "cordon",
    version,
    about = "Run connectors as sandboxed WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and run connectors.
    #[command(subcommand)]
    Connector(Box<ConnectorCommand>),
    /// Check a project: JSON, action types, runAfter, cycles, expressions, connections,
    /// operations and static inputs. Exits 1 if anything is wrong.
    Validate {
        /// The project directory (holds connections.json and one folder per workflow).
        project: PathBuf,
        /// PROJECT is a tenants directory (as for `serve --tenants`): validate every tenant,
        /// its tenant.json included.
        #[arg(long)]
        tenants: bool,
        /// Print the problems as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Run a workflow to its end, showing each action; exits 0 only if the run succeeded.
    ///
    /// Runs that a killed `cordon` left unfinished in the same history are resumed first.
    Run {
        /// The project directory.
        project: PathBuf,
        /// The workflow (its folder name).
        workflow: String,
        /// The trigger body: JSON, or @FILE.
        #[arg(long)]
        trigger_body: Option<String>,
        /// The trigger body's type, as a request's Content-Type: the body is then read as
        /// bytes and shaped as `cordon serve` shapes a request with that type (XML, a form,
        /// multipart, text, binary content) instead of being parsed as JSON.
        #[arg(long, requires = "trigger_body")]
        content_type: Option<String>,
        /// The run history database [default: PROJECT/.cordon/history.db].
        #[arg(long)]
        db: Option<PathBuf>,
        /// Where HttpWebhook actions' callbacks are received while the run lasts (only when
        /// the project has such an action); port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:0")]
        callback_listen: std::net::SocketAddr,
        /// The URL services reach --callback-listen at, the base of the callback URLs
        /// [default: http://CALLBACK_LISTEN].
        #[arg(long, value_parser = public_url)]
        public_url: Option<String>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Read the run history.
    #[command(subcommand)]
    Runs(Box<workflow::RunsCommand>),
    /// The encrypted secret store that connections read with @secret('NAME').
    ///
    /// Values are sealed with AES-256-GCM under the master key in $CORDON_MASTER_KEY (or the
    /// file in $CORDON_MASTER_KEY_FILE) and kept in the project's history database; `run`,
    /// `serve` and `validate` open the store with the same key.
    #[command(subcommand)]
    Secrets(Box<secrets::SecretsCommand>),
    /// Serve a project: request, recurrence and polling triggers, and the management API.
    ///
    /// Runs a killed or stopped server left unfinished are resumed at start.
    Serve {
        /// The project directory, or with --tenants the directory of tenants.
        project: PathBuf,
        /// Serve every subdirectory of PROJECT as a tenant, under /tenants/NAME/, each with
        /// its own history, keys, artifact cache and quotas (TENANT/tenant.json); the
        /// operator key (PROJECT/.cordon/operator-key) opens every tenant's management API.
        #[arg(long)]
        tenants: bool,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:7071")]
        listen: std::net::SocketAddr,
        /// The URL callers reach this server at (behind a proxy, in a container, on
        /// 0.0.0.0), such as https://flows.example.com: the base of the printed trigger URLs
        /// and of the callback URLs HttpWebhook actions give out [default: http://LISTEN].
        #[arg(long, value_parser = public_url)]
        public_url: Option<String>,
        /// The run history database [default: PROJECT/.cordon/history.db].
        #[arg(long)]
        db: Option<PathBuf>,
        /// How many seconds a request waits for a workflow's Response before it gets 202.
        #[arg(long, default_value_t = 120)]
        response_timeout: u64,
        /// On SIGTERM or Ctrl-C, how many seconds runs in flight get to finish before the
        /// server exits; runs still unfinished then resume on the next start.
        #[arg(long, default_value_t = 30)]
        grace_period: u64,
        /// How many seconds a client may take to send a request's head, then its body, and
        /// may leave the answer unread once the socket's buffers are full; a keep-alive
        /// connection idle this long is closed.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        client_timeout: u64,
        /// How many connections may be open at once; more wait to be accepted. Lowered to half
        /// the open-files limit if that is less.
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_connections: u64,
        /// How many days a finished run stays in the history (Logic Apps' default is 90);
        /// older ones are deleted at start and then hourly. 0 keeps every run.
        #[arg(long, default_value_t = crate::workflow::retention::DEFAULT_RETENTION_DAYS)]
        retention_days: u32,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Workflow helpers.
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
    /// Evaluate one expression template against a JSON context and print the JSON result.
    ///
    /// The context may hold `parameters`, `variables`, `actions` (name to record with
    /// `outputs`), `trigger` (with `outputs.body`), `item`, `items`, `iterationIndexes`,
    /// `results`, `workflow` and `appsettings`; every key is optional.
    Expr {
        /// The template, as it would appear in a workflow: '@add(1, 2)' or 'Hi @{parameters(''name'')}'.
        template: String,
        /// A JSON file with the context.
        #[arg(long, value_name = "FILE")]
        context: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum WorkflowsCommand {
    /// Print the signed callback URL of a workflow's request trigger.
    CallbackUrl {
        /// The project directory.
        project: PathBuf,
        /// The workflow.
        workflow: String,
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:7071")]
        base: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConnectorCommand {
    /// Print what a connector is and what it asks for.
    Inspect {
        /// A component file, or the name of a built-in connector (json-transform, http, github).
        connector: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Run one action and print its output JSON.
    Invoke {
        /// A component file, or the name of a built-in connector.
        connector: String,
        /// The action's operation id.
        operation: String,
        #[command(flatten)]
        call: CallArgs,
    },
    /// Poll a trigger once and print the items and the next state.
    Poll {
        /// A component file, or the name of a built-in connector.
        connector: String,
        /// The trigger's operation id.
        trigger: String,
        /// The state the previous poll returned (JSON, or @FILE).
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        call: CallArgs,
    },
    /// List the built-in connectors.
    Builtins,
    /// Show, for each connection of a project whose connector is a file, the approved
    /// version, the file's version, and what a pending upgrade asks for.
    Status {
        #[command(flatten)]
        history: workflow::HistoryArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Approve the connector file a connection now names: show what it asks for beyond the
    /// connection's grant and, with --yes, grant exactly that and record it as the approved
    /// version. Until then the approved version keeps running.
    Approve {
        /// The connection's name in connections.json.
        connection: String,
        #[command(flatten)]
        history: workflow::HistoryArgs,
        /// Record the approval (without it, only the difference is shown).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

#[derive(Debug, Args)]
struct CacheArgs {
    /// Where compiled connectors are cached [default: $CORDON_CACHE_DIR, or ~/.cache/cordon].
    #[arg(long, env = "CORDON_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every time; do not read or write the artifact cache.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// The input: JSON text, or @FILE to read it from a file.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Grant an outbound host pattern, such as https://api.github.com. Repeatable.
    #[arg(long = "grant-host", value_name = "PATTERN")]
    grant_hosts: Vec<String>,
    /// Grant a secret and say where its value is: NAME=env:VARIABLE or NAME=file:PATH. Repeatable.
    #[arg(long = "secret", value_name = "NAME=LOCATION")]
    secrets: Vec<String>,
    /// Also let the connector read this granted secret's plaintext. Repeatable.
    #[arg(long = "allow-secret-read", value_name = "NAME")]
    plaintext_secrets: Vec<String>,
    /// Set a connection parameter; VALUE is JSON if it parses as JSON, text otherwise. Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// The connection's name, as it appears in audit events.
    #[arg(long, default_value = "cli")]
    connection: String,
    /// Idempotency key passed to the connector.
    #[arg(long, default_value = "cli-call")]
    idempotency_key: String,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Entry point of the `cordon` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve { log_json, .. } => init_tracing(*log_json, "info"),
        // Audit events (secrets stored, removed, revealed; denials) are shown by every command.
        _ => init_tracing(false, "warn,cordon::audit=info"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Checks `--public-url`: an http or https URL with nothing after its path, which trigger and
/// callback paths are appended to.
fn public_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("{text:?} is not a URL ({e}); give one such as https://flows.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{text:?} must be an http or https URL with a host, such as https://flows.example.com"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{text:?} must not have a query or fragment: paths and ?sig= are appended to it"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Logs go to stderr, filtered by `CORDON_LOG` (for example `info,cordon::audit=warn`).
fn init_tracing(json: bool, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CORDON_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    use std::io::IsTerminal as _;
    // Colours only on a terminal, so redirected logs stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = match cli.command {
        Command::Expr { template, context } => return evaluate_expression(&template, context.as_deref()),
        Command::Connector(command) => *command,
        Command::Validate {
            project,
            tenants,
            json,
            cache,
        } => {
            return workflow::validate_project(&project, json, &cache, tenants).await;
        }
        Command::Run {
            project,
            workflow,
            trigger_body,
            content_type,
            db,
            callback_listen,
            public_url,
            cache,
        } => {
            return workflow::run_workflow(
                &project,
                &workflow,
                trigger_body.as_deref(),
                content_type.as_deref(),
                db.as_deref(),
                (callback_listen, public_url.as_deref()),
                &cache,
            )
            .await;
        }
        Command::Runs(command) => return workflow::runs(*command).await,
        Command::Secrets(command) => return secrets::run(*command),
        Command::Serve {
            project,
            tenants,
            listen,
            public_url,
            db,
            response_timeout,
            grace_period,
            client_timeout,
            max_connections,
            retention_days,
            log_json: _,
            cache,
        } => {
            let config = crate::server::ServerConfig {
                response_timeout: std::time::Duration::from_secs(response_timeout),
                grace_period: std::time::Duration::from_secs(grace_period),
                client_timeout: std::time::Duration::from_secs(client_timeout),
                max_connections: crate::server::listener::usable_connections(max_connections as usize),
                ..crate::server::ServerConfig::default()
            };
            let addresses = workflow::Addresses {
                listen,
                public_url: public_url.as_deref(),
            };
            let retention = crate::workflow::retention::period(retention_days);
            return workflow::serve(
                &project,
                addresses,
                db.as_deref(),
                config,
                &cache,
                tenants,
                retention,
            )
            .await;
        }
        Command::Workflows(WorkflowsCommand::CallbackUrl {
            project,
            workflow,
            base,
        }) => {
            return workflow::callback_url(&project, &workflow, &base);
        }
    };
    match command {
        ConnectorCommand::Status { history, json, cache } => upgrades::status(&history, json, &cache).await,
        ConnectorCommand::Approve {
            connection,
            history,
            yes,
            cache,
        } => upgrades::approve(&history, &connection, yes, &cache).await,
        ConnectorCommand::Builtins => {
            for b in builtin::BUILTINS {
                println!("{}", b.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectorCommand::Inspect {
            connector,
            json,
            cache,
        } => {
            let connector = load(&runtime(&cache)?, &connector).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inspect_json(&connector))?);
            } else {
                print!("{}", inspect_text(&connector));
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectorCommand::Invoke {
            connector,
            operation,
            call,
        } => {
            let runtime = runtime(&call.cache)?;
            let connection = connect(&runtime, &connector, &call).await?;
            let input = read_json("--input", &call.input)?;
            let info = CallInfo {
                idempotency_key: call.idempotency_key.clone(),
                attempt: 1,
            };
            let invocation = connection.invoke(&operation, &input, &info).await;
            print_log(&invocation.log);
            finish(invocation.result.map(|v| serde_json::to_string_pretty(&v)))
        }
        ConnectorCommand::Poll {
            connector,
            trigger,
            state,
            call,
        } => {
            let runtime = runtime(&call.cache)?;
            let connection = connect(&runtime, &connector, &call).await?;
            let input = read_json("--input", &call.input)?;
            let state = state.map(|s| read_json("--state", &s)).transpose()?;
            let info = CallInfo {
                idempotency_key: call.idempotency_key.clone(),
                attempt: 1,
            };
            let invocation = connection.poll(&trigger, &input, state.as_ref(), &info).await;
            print_log(&invocation.log);
            finish(invocation.result.map(|p| serde_json::to_string_pretty(&p)))
        }
    }
}

fn evaluate_expression(template: &str, context: Option<&Path>) -> anyhow::Result<ExitCode> {
    let scope = match context {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("--context: cannot read {path:?}"))?;
            let document: Value = serde_json::from_str(&text)
                .with_context(|| format!("--context: {path:?} is not valid JSON"))?;
            if !document.is_object() {
                bail!(
                    "--context: {path:?} must hold a JSON object with keys such as \"parameters\" and \"actions\""
                );
            }
            crate::expr::JsonScope::new(document)
        }
        None => crate::expr::JsonScope::default(),
    };
    let parsed = match crate::expr::Template::parse(template) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    match parsed.evaluate(&scope) {
        Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

fn finish(result: Result<serde_json::Result<String>, crate::InvokeError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(text) => {
            println!("{}", text?);
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ crate::InvokeError::InvalidInput { .. })
        | Err(error @ crate::InvokeError::UnknownOperation { .. }) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(2))
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

fn print_log(log: &crate::guest_log::GuestLogRecord) {
    for line in &log.lines {
        eprintln!("[connector {:?} {:?}] {}", line.stream, line.level, line.message);
    }
    if log.dropped_lines > 0 {
        eprintln!(
            "[connector] {} log lines dropped (over the cap)",
            log.dropped_lines
        );
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("cordon"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("cordon"))
}

fn runtime(cache: &CacheArgs) -> anyhow::Result<Runtime> {
    let cache_dir = if cache.no_cache {
        None
    } else {
        cache.cache_dir.clone().or_else(default_cache_dir)
    };
    Runtime::new(RuntimeConfig {
        cache_dir,
        // The CLI runs one call at a time; a small pool keeps start-up cheap.
        max_concurrent_instances: 16,
        ..RuntimeConfig::default()
    })
}

async fn load(runtime: &Runtime, name: &str) -> anyhow::Result<Connector> {
    let path = Path::new(name);
    if path.exists() {
        return Ok(runtime.load_file(path).await?);
    }
    if let Some(builtin) = builtin::find(name) {
        return Ok(runtime.load_builtin(builtin).await?);
    }
    let names: Vec<_> = builtin::BUILTINS.iter().map(|b| b.name).collect();
    bail!(
        "{name:?} is neither a file nor a built-in connector (built-ins: {})",
        names.join(", ")
    )
}

async fn connect(runtime: &Runtime, connector: &str, call: &CallArgs) -> anyhow::Result<crate::Connection> {
    let connector = load(runtime, connector).await?;
    let hosts = call
        .grant_hosts
        .iter()
        .map(|h| HostPattern::parse(h).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut secret_map = SecretMap::default();
    let mut secrets = Vec::new();
    for spec in &call.secrets {
        let (name, location) = spec
            .split_once('=')
            .with_context(|| format!("--secret {spec:?} must be NAME=env:VARIABLE or NAME=file:PATH"))?;
        let name = SecretName::new(name)?;
        let location: SecretLocation = location.parse().map_err(anyhow::Error::msg)?;
        secret_map.insert(name.clone(), location);
        secrets.push(SecretGrant {
            plaintext: call.plaintext_secrets.iter().any(|p| p == name.as_str()),
            name,
            hosts: Vec::new(),
        });
    }
    for name in &call.plaintext_secrets {
        if !secrets.iter().any(|s| s.name.as_str() == name) {
            bail!("--allow-secret-read {name:?} names a secret that no --secret grants");
        }
    }
    let mut parameters = Map::new();
    for spec in &call.params {
        let (name, value) = spec
            .split_once('=')
            .with_context(|| format!("--param {spec:?} must be NAME=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        parameters.insert(name.to_owned(), value);
    }
    Ok(connector.connect(ConnectionConfig {
        name: ConnectionName::new(call.connection.clone())?,
        parameters,
        grant: Grant { hosts, secrets },
        secrets: Arc::new(secret_map),
    })?)
}

fn read_json(flag: &str, text: &str) -> anyhow::Result<Value> {
    let (source, text) = match text.strip_prefix('@') {
        Some(path) => (
            format!("file {path:?}"),
            std::fs::read_to_string(path).with_context(|| format!("{flag}: cannot read {path:?}"))?,
        ),
        None => ("the argument".to_owned(), text.to_owned()),
    };
    serde_json::from_str(&text).with_context(|| format!("{flag}: {source} is not valid JSON"))
}

fn inspect_json(connector: &Connector) -> Value {
    let m = connector.manifest();
    serde_json::json!({
        "id": m.id,
        "version": m.version.to_string(),
        "display_name": m.display_name,
        "description": m.description,
        "contract": format!("cordon:connector@{}", crate::CONTRACT_VERSION),
        "component_hash": connector.component_hash(),
        "operations": m.operations,
        "hosts": m.hosts,
        "secrets": m.secrets,
        "parameters": m.parameters,
        "artifact": connector.load_report().artifact,
        "identity": connector.load_report().identity,
    })
}

fn inspect_text(connector: &Connector) -> String {
    use std::fmt::Write;
    let m = connector.manifest();
    let mut out = String::new();
    let _ = writeln!(out, "{} {} ({})", m.id, m.version, m.display_name);
    if !m.description.is_empty() {
        let _ = writeln!(out, "  {}", m.description);
    }
    let _ = writeln!(
        out,
        "contract:       cordon:connector@{}",
        crate::CONTRACT_VERSION
    );
    let _ = writeln!(out, "component hash: {}", connector.component_hash());
    let _ = writeln!(out, "\noperations:");
    for op in &m.operations {
        let kind = match op.kind {
            crate::manifest::OperationKind::Action => "action ",
            crate::manifest::OperationKind::Trigger => "trigger",
        };
        let _ = writeln!(out, "  {kind} {:<16} {}", op.id.as_str(), op.description);
        let _ = writeln!(out, "    input schema:  {}", op.input_schema);
        let _ = writeln!(out, "    output schema: {}", op.output_schema);
    }
    let _ = writeln!(out, "\nrequested hosts:");
    if m.hosts.is_empty() {
        let _ = writeln!(out, "  none (no network access)");
    }
    for host in &m.hosts {
        let _ = writeln!(out, "  {host}");
    }
    let _ = writeln!(out, "\nrequested secrets:");
    if m.secrets.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for s in &m.secrets {
        let bound = if s.hosts.is_empty() {
            "any granted host".to_owned()
        } else {
            s.hosts.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(", ")
        };
        let plaintext = if s.plaintext { ", asks for plaintext" } else { "" };
        let _ = writeln!(out, "  {} (sent to {bound}{plaintext}) {}", s.name, s.description);
    }
    if !m.parameters.is_empty() {
        let _ = writeln!(out, "\nconnection parameters:");
        for p in &m.parameters {
            let default = p
                .default_value
                .as_ref()
                .map(|d| format!(" [default: {d}]"))
                .unwrap_or_default();
            let required = if p.required { " (required)" } else { "" };
            let _ = writeln!(out, "  {}{required}{default} {}", p.name, p.description);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::public_url;

    #[test]
    fn public_urls_are_bases_that_paths_append_to() {
        for (given, wanted) in [
            ("https://flows.example.com", Ok("https://flows.example.com")),
            ("https://flows.example.com/", Ok("https://flows.example.com")),
            ("http://10.0.0.5:7071/cordon/", Ok("http://10.0.0.5:7071/cordon")),
            ("flows.example.com", Err("is not a URL")),
            ("ftp://flows.example.com", Err("must be an http or https URL")),
            ("https://flows.example.com/?x=1", Err("must not have a query")),
            (
                "https://flows.example.com/#top",
                Err("must not have a query or fragment"),
            ),
        ] {
            match (public_url(given), wanted) {
                (Ok(got), Ok(wanted)) => assert_eq!(got, wanted, "{given}"),
                (Err(got), Err(wanted)) => assert!(got.contains(wanted), "{given}: {got}"),
                (got, wanted) => panic!("{given}: got {got:?}, wanted {wanted:?}"),
            }
        }
    }
}
