//! `gongwen-agent`: parse flags, load the configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gongwen_agent::Agent;
use gongwen_agent::keygen::keygen;
use gongwen_common::NodeId;
use gongwen_common::config::AgentConfig;

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
