//! The `signet` binary: parse the command line, load the configuration and
//! hand over to [`signet::app`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signet::config::{Config, ProcessEnv, EXIT_CONFIG};

#[derive(Parser)]
#[command(
    name = "signet",
    version,
    about = "signet-rs: a memory server for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (SIGNET_HOST, SIGNET_BIND,
    /// SIGNET_PORT, SIGNET_PATH, SIGNET_LOG_FILE, SIGNET_LOG_FORMAT).
    Serve,
    /// Offline token tools using the workspace secret.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token and print it (creates the secret if absent).
    Create {
        /// admin, operator, agent or readonly.
        #[arg(long)]
        role: String,
        /// The token's subject (the acting identity).
        #[arg(long)]
        sub: Option<String>,
        /// Restrict to records with this field, e.g. project=web (repeatable).
        #[arg(long)]
        scope: Vec<String>,
        /// Lifetime: seconds or 90m, 12h, 7d (default auth.defaultTokenTtlSeconds).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Print a token's claims and whether it verifies.
    Inspect { token: String },
}

fn load_config() -> Result<Config, ExitCode> {
    Config::load(&ProcessEnv).map_err(|e| {
        eprintln!("signet: configuration error: {e}");
        ExitCode::from(EXIT_CONFIG as u8)
    })
}

fn token_command(cmd: TokenCommand) -> ExitCode {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let out = match cmd {
        TokenCommand::Create {
            role,
            sub,
            scope,
            ttl,
        } => signet::cli::token::create(&config, &role, sub, &scope, ttl.as_deref()),
        TokenCommand::Inspect { token } => signet::cli::token::inspect(&config, &token)
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default()),
    };
    match out {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("signet: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SIGNET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (&config.log_file, config.log_json) {
        (Some(path), json) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let b = builder
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false);
            if json {
                b.json().init()
            } else {
                b.init()
            }
        }
        (None, true) => builder.json().init(),
        (None, false) => builder.init(),
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown signal received");
}

async fn serve(config: Config) -> anyhow::Result<()> {
    for key in &config.unknown_keys {
        tracing::warn!(key = %key, "unknown configuration key ignored");
    }
    let listener = signet::app::bind(&config).await?;
    let app = signet::app::App::start(config, listener, shutdown_signal()).await?;
    app.wait().await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Token { command } => token_command(command),
        Command::Serve => {
            let config = match load_config() {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(e) = init_logging(&config) {
                eprintln!("signet: cannot open log: {e}");
                return ExitCode::from(EXIT_CONFIG as u8);
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(16)
                .enable_all()
                .build();
            let rt = match rt {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("signet: cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("signet: {e:#}");
                    tracing::error!(error = %format!("{e:#}"), "daemon stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
