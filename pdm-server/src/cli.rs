//! The command line: `serve`, `demo`, `migrate`, `simulate`, `users create`, `auth rotate-key`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use pdm_store::redact_url;

use crate::config::ServerConfig;

/// pdm: predictive maintenance for machines that stream sensor readings.
#[derive(Debug, Parser)]
#[command(name = "pdm-server", version, about)]
pub struct Cli {
    /// TOML configuration file (flags and PDM_* variables override it).
    #[arg(long, global = true, env = "PDM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded database and local state [default: ./pdm-data].
    #[arg(long, global = true, env = "PDM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL, sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data dir].
    #[arg(
        long,
        global = true,
        env = "PDM_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Log filter (tracing syntax), e.g. `info` or `pdm_ingest=debug`.
    #[arg(
        long,
        global = true,
        env = "PDM_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API, and MQTT ingestion when --mqtt-url is given.
    Serve(ServeArgs),
    /// Run the server on the embedded database with simulated machines, and show it working.
    Demo(DemoArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Publish simulated machine telemetry to an MQTT broker.
    Simulate(SimulateArgs),
    /// Manage users (the first admin, a forgotten password).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage the access tokens' signing keys.
    #[command(subcommand)]
    Auth(AuthCommand),
}

/// `users ...`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password comes from PDM_USER_PASSWORD or, with --password-stdin, from
    /// the first line of standard input (never from the command line, where `ps` shows it).
    Create(CreateUserArgs),
}

/// `users create`.
#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// Sign-in email.
    #[arg(long)]
    pub email: String,
    /// Display name [default: the part of the email before @].
    #[arg(long)]
    pub name: Option<String>,
    /// Role: admin, engineer, viewer or a custom role.
    #[arg(long, default_value = "viewer")]
    pub role: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `auth ...`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Put a new signing key first in <data_dir>/auth-keys.json, keeping the previous one for
    /// the tokens it signed; restart the servers to use it.
    RotateKey,
}

/// Settings shared by `serve` and `demo`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, env = "PDM_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// MQTT broker to ingest from, mqtt://[USER[:PASS]@]HOST[:PORT] or mqtts://... [default: off].
    #[arg(long, env = "PDM_MQTT_URL", value_name = "URL", hide_env_values = true)]
    pub mqtt_url: Option<String>,
    /// MQTT client id; keep it stable so the broker keeps the session across restarts.
    #[arg(long, env = "PDM_MQTT_CLIENT_ID", value_name = "ID")]
    pub mqtt_client_id: Option<String>,
    /// Consume through the shared subscription $share/GROUP/pdm/+/telemetry.
    #[arg(long, env = "PDM_MQTT_SHARED_GROUP", value_name = "GROUP")]
    pub mqtt_shared_group: Option<String>,
    /// This worker's share of the machines for live detection, INDEX/COUNT [default: 0/1].
    #[arg(long, env = "PDM_LIVE_SHARD", value_name = "INDEX/COUNT")]
    pub live_shard: Option<pdm_core::live::ShardAssignment>,
    /// The name this worker claims jobs under; unique per worker [default: pdm-server].
    #[arg(long, env = "PDM_WORKER", value_name = "NAME")]
    pub worker: Option<String>,
    /// Let webhooks reach private, loopback and link-local addresses [default: false].
    #[arg(long, env = "PDM_WEBHOOKS_ALLOW_PRIVATE", value_name = "BOOL")]
    pub webhooks_allow_private: Option<bool>,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listening and MQTT settings.
    #[command(flatten)]
    pub listen: ListenArgs,
    /// Register unknown machines and sensors on first sight [default: off].
    #[arg(long, env = "PDM_AUTO_REGISTER")]
    pub auto_register: Option<bool>,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Listening and MQTT settings.
    #[command(flatten)]
    pub listen: ListenArgs,
    /// Simulated seconds per real second while replaying the last two hours of history
    /// (the simulation never runs ahead of the wall clock; once caught up it runs live).
    #[arg(long, default_value_t = 240.0)]
    pub speed: f64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Stop after this many seconds [default: run until Ctrl-C].
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
}

/// `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Broker to publish to.
    #[arg(long, env = "PDM_MQTT_URL", value_name = "URL", hide_env_values = true)]
    pub mqtt_url: String,
    /// Number of machines (kinds rotate pump, motor, compressor).
    #[arg(long, default_value_t = 3)]
    pub machines: usize,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Sample interval of each machine, in milliseconds of simulated time.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Stop after this many real seconds [default: run until Ctrl-C].
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
}

/// Entry point of the binary.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: bad log filter {filter:?} ({e}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = match &cli.config {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::default(),
    };
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = cli.database_url {
        config.database_url = Some(url);
    }
    apply_auth_env(&mut config)?;
    match cli.command {
        Command::Serve(args) => {
            apply_listen(&mut config, args.listen)?;
            if let Some(on) = args.auto_register {
                config.auto_register = on;
            }
            let server = crate::run::Server::start(config).await?;
            println!("pdm-server listening on http://{}", server.local_addr());
            server.run_until_signal().await
        }
        Command::Demo(args) => crate::demo::run(config, args).await,
        Command::Migrate => {
            config.check()?;
            let url = config.effective_database_url();
            if config.database_url.is_none() {
                std::fs::create_dir_all(&config.data_dir)?;
            }
            let report = pdm_store::migrate(&url, &config.store).await?;
            let applied: Vec<String> = report
                .applied
                .iter()
                .map(|(v, name)| format!("{v:04}_{name}"))
                .collect();
            if applied.is_empty() {
                println!(
                    "{}: schema current at version {}",
                    redact_url(&url),
                    report.version
                );
            } else {
                println!(
                    "{}: applied {}; schema at version {}",
                    redact_url(&url),
                    applied.join(", "),
                    report.version
                );
            }
            Ok(())
        }
        Command::Simulate(args) => crate::demo::simulate(args).await,
        Command::Users(UsersCommand::Create(args)) => create_user(&config, args).await,
        Command::Auth(AuthCommand::RotateKey) => {
            if config.auth.signing_key.is_some() {
                anyhow::bail!(
                    "auth.signing_key (PDM_AUTH_SIGNING_KEY) is configured: rotate it there (every worker gets the new one)"
                );
            }
            std::fs::create_dir_all(&config.data_dir)?;
            let file = crate::auth::keys::path(&config.data_dir);
            let kid = crate::auth::keys::rotate(&file)?;
            println!(
                "new signing key {kid} in {}; restart the server to sign with it (tokens of the previous key stay valid until they expire)",
                file.display()
            );
            Ok(())
        }
    }
}

/// `PDM_AUTH_SIGNING_KEY`, `PDM_ADMIN_EMAIL`, `PDM_ADMIN_PASSWORD` and `PDM_SMTP_PASSWORD`
/// (secrets: never flags, never shown by `--help`).
fn apply_auth_env(config: &mut ServerConfig) -> anyhow::Result<()> {
    if let Ok(password) = std::env::var("PDM_SMTP_PASSWORD") {
        match config.smtp.as_mut() {
            Some(smtp) if !password.is_empty() => smtp.password = Some(password),
            Some(_) => {}
            None if password.is_empty() => {}
            None => anyhow::bail!(
                "PDM_SMTP_PASSWORD is set but there is no [smtp] section in the configuration: add one (host, from, username)"
            ),
        }
    }
    if let Ok(key) = std::env::var("PDM_AUTH_SIGNING_KEY") {
        if !key.is_empty() {
            config.auth.signing_key = Some(key);
        }
    }
    let email = std::env::var("PDM_ADMIN_EMAIL").unwrap_or_default();
    let password = std::env::var("PDM_ADMIN_PASSWORD").unwrap_or_default();
    match (email.is_empty(), password.is_empty()) {
        (true, true) => {}
        (false, false) => {
            config.auth.admin = Some(crate::auth::AdminBootstrap { email, password });
        }
        (false, true) => {
            anyhow::bail!("PDM_ADMIN_EMAIL is set but PDM_ADMIN_PASSWORD is not: set both to create the first admin")
        }
        (true, false) => {
            anyhow::bail!("PDM_ADMIN_PASSWORD is set but PDM_ADMIN_EMAIL is not: set both to create the first admin")
        }
    }
    Ok(())
}

async fn create_user(config: &ServerConfig, args: CreateUserArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        std::env::var("PDM_USER_PASSWORD").map_err(|_| {
            anyhow::anyhow!(
                "no password: set PDM_USER_PASSWORD or pass --password-stdin and type it"
            )
        })?
    };
    crate::auth::password::check_policy(&password)
        .map_err(|m| anyhow::anyhow!("the password {m}"))?;
    // The API's rule for an email, so the CLI cannot make a user the API would refuse.
    let email = crate::api::auth::email(&args.email, "--email")
        .map_err(|_| anyhow::anyhow!("--email: {:?} is not an email address", args.email))?;
    let name = args
        .name
        .unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
    config.check()?;
    let store = crate::run::open_store(config).await?;
    store
        .sync_builtin_roles(&pdm_core::store::Role::builtin())
        .await?;
    if store.user_by_email(&email).await?.is_some() {
        anyhow::bail!("a user with the email {email} exists already");
    }
    let hash = crate::auth::password::hash(password).await;
    let user = store
        .create_user(
            &pdm_core::store::NewUser {
                email: email.clone(),
                name,
                role: args.role.clone(),
                password_hash: hash,
            },
            pdm_core::Timestamp::now(),
        )
        .await
        .map_err(|e| match e {
            pdm_core::StoreError::NotFound(_) => {
                anyhow::anyhow!("--role: no role named '{}'", args.role)
            }
            other => other.into(),
        })?;
    println!("created user {} ({email}, role {})", user.id, user.role);
    Ok(())
}

/// Applies the listening flags over the configuration.
pub fn apply_listen(config: &mut ServerConfig, args: ListenArgs) -> anyhow::Result<()> {
    if let Some(http) = args.http {
        config.http = http;
    }
    if let Some(shard) = args.live_shard {
        config.live.shard = shard;
    }
    if let Some(worker) = args.worker {
        config.live.worker = worker;
    }
    if let Some(allow) = args.webhooks_allow_private {
        config.webhooks.allow_private_destinations = allow;
    }
    #[cfg(feature = "mqtt")]
    {
        if let Some(url) = args.mqtt_url {
            let mut mqtt = config.mqtt.take().unwrap_or_default();
            mqtt.connection.url = url;
            config.mqtt = Some(mqtt);
        }
        if let Some(mqtt) = config.mqtt.as_mut() {
            if let Some(id) = args.mqtt_client_id {
                mqtt.client_id = id;
            }
            if let Some(group) = args.mqtt_shared_group {
                mqtt.shared_group = Some(group);
            }
        }
    }
    #[cfg(not(feature = "mqtt"))]
    if args.mqtt_url.is_some() {
        anyhow::bail!("--mqtt-url: this build of pdm-server has no MQTT support (feature `mqtt`)");
    }
    Ok(())
}

/// Sleeps for `secs` when given, else forever.
pub async fn sleep_or_forever(secs: Option<u64>) {
    match secs {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => std::future::pending::<()>().await,
    }
}
