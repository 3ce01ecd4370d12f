//! The command line client: each command is one or a few admin API calls, printed as a table
//! for people or as JSON (`--json`) for scripts. Exit codes: 0 done, 1 the API refused (its
//! error code and message are printed), 2 bad usage, 3 the API could not be reached.

pub mod api;
pub mod commands;
pub mod sign;
pub mod table;

use clap::{Parser, Subcommand};

pub use api::{Api, CliError};

#[derive(Debug, Parser)]
#[command(
    name = "hookrelay",
    version,
    about = "The hookrelay admin API from a terminal"
)]
pub struct Cli {
    /// The deployment's API URL (`make dev`: http://127.0.0.1:3000).
    #[arg(
        long = "api-url",
        env = "HOOKRELAY_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    pub api_url: String,
    /// The admin key, or a workspace API key.
    #[arg(long, env = "HOOKRELAY_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
    /// The workspace.
    #[arg(
        long,
        short,
        env = "HOOKRELAY_WORKSPACE",
        default_value = "default",
        global = true
    )]
    pub workspace: String,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the workspace match a YAML or JSON config file (sources and endpoints by name).
    Sync {
        file: std::path::PathBuf,
        /// Show the plan without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Also delete what the file does not list.
        #[arg(long)]
        prune: bool,
    },
    /// Print the workspace's config file (YAML; secrets masked).
    Dump,
    /// Sources: where webhooks come in.
    #[command(subcommand)]
    Sources(commands::resources::SourceCommand),
    /// Endpoints: where events go.
    #[command(subcommand)]
    Endpoints(commands::resources::EndpointCommand),
    /// Events received.
    #[command(subcommand)]
    Events(commands::history::EventCommand),
    /// Delivery attempts.
    #[command(subcommand)]
    Attempts(commands::history::AttemptCommand),
    /// Deliver an event to an endpoint again, now.
    Retry {
        event_id: String,
        #[arg(long)]
        endpoint: String,
    },
    /// The dead-letter queue (admin key only).
    #[command(subcommand)]
    Dlq(commands::dlq::DlqCommand),
    /// Post a signed test webhook to a source, as its sender would.
    Send(commands::send::SendArgs),
    /// Follow new events and attempts as they happen (Ctrl-C stops).
    Tail(commands::tail::TailArgs),
}

/// Runs one command; answers what to print.
pub async fn run(cli: Cli) -> Result<String, CliError> {
    let api = Api::new(&cli.api_url, cli.key.as_deref(), &cli.workspace)?;
    let json = cli.json;
    match cli.command {
        Command::Sync {
            file,
            dry_run,
            prune,
        } => commands::config::sync(&api, &file, dry_run, prune, json).await,
        Command::Dump => commands::config::dump(&api).await,
        Command::Sources(c) => commands::resources::sources(&api, c, json).await,
        Command::Endpoints(c) => commands::resources::endpoints(&api, c, json).await,
        Command::Events(c) => commands::history::events(&api, c, json).await,
        Command::Attempts(c) => commands::history::attempts(&api, c, json).await,
        Command::Retry { event_id, endpoint } => {
            commands::history::retry(&api, &event_id, &endpoint, json).await
        }
        Command::Dlq(c) => commands::dlq::run(&api, c, json).await,
        Command::Send(args) => commands::send::run(&api, args, json).await,
        Command::Tail(args) => commands::tail::run(&api, args, json).await,
    }
}
