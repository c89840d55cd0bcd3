//! `gongwen-agent`: parse flags, load the configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gongwen_agent::Agent;
use gongwen_agent::control::{self, DocStatus, Request};
use gongwen_agent::keygen::keygen;
use gongwen_agent::state::Folders;
use gongwen_common::config::AgentConfig;
use gongwen_common::{DocId, NodeId};

/// The gongwen agent: one per unit, connected to the hub.
#[derive(Debug, Parser)]
#[command(name = "gongwen-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent until Ctrl-C or SIGTERM, reconnecting to the hub as needed.
    Run {
        /// The agent's configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show documents this unit sent, with each recipient's state and receipts.
    Status {
        /// One document's id (default: all).
        doc: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON (an object for one document, an array for all).
        #[arg(long)]
        json: bool,
    },
    /// Make this unit's key (ID.key, 0600) and a CSR (ID.csr) for the administrator.
    Keygen {
        /// This unit's node id, e.g. daqing-gov.
        #[arg(long)]
        id: String,
        /// Directory to write ID.key and ID.csr into.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gongwen_common::daemon::init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gongwen-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let config = AgentConfig::load(&config)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let agent = Agent::new(config)?;
                agent.run(gongwen_common::daemon::shutdown_signal()).await
            })?;
        }
        Command::Status { doc, config, json } => {
            let config = AgentConfig::load(&config)?;
            let doc = doc.map(|d| DocId::parse(&d)).transpose()?;
            let socket = Folders::new(&config.root).control_socket();
            let runtime = tokio::runtime::Runtime::new()?;
            let value = runtime.block_on(control::query(&socket, &Request::Status { doc }))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                let docs: Vec<DocStatus> = if doc.is_some() {
                    vec![serde_json::from_value(value)?]
                } else {
                    serde_json::from_value(value)?
                };
                print_status(&docs);
            }
        }
        Command::Keygen { id, out } => {
            let id = NodeId::parse(&id)?;
            let files = keygen(&id, &out)?;
            println!("key:  {} (keep it here; mode 0600)", files.key.display());
            println!("CSR:  {}", files.csr.display());
            println!(
                "send the CSR to the administrator, who runs:\n  gongwen-certs --ca-dir DIR sign --csr {id}.csr --role node --out {id}.crt"
            );
        }
    }
    Ok(())
}

fn print_status(docs: &[DocStatus]) {
    if docs.is_empty() {
        println!("no documents sent yet");
    }
    for d in docs {
        println!(
            "{}  {}  {}{}",
            d.doc_id,
            d.sent_at
                .as_deref()
                .unwrap_or("(not yet accepted by the hub)"),
            d.title,
            if d.doc_number.is_empty() {
                String::new()
            } else {
                format!("  {}", d.doc_number)
            }
        );
        for r in &d.recipients {
            println!(
                "    {:<24} {:<12} {}{}",
                r.recipient,
                r.state,
                r.delivered_at.as_deref().unwrap_or(""),
                r.reason
                    .as_deref()
                    .map(|x| format!("  ({x})"))
                    .unwrap_or_default()
            );
        }
    }
}
