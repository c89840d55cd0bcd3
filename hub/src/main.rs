//! `gongwen-hub`: parse flags, load the configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gongwen_common::config::HubConfig;
use gongwen_common::display;
use gongwen_hub::Hub;
use gongwen_hub::ops::control::{self, Request};
use gongwen_hub::state::registry::NodeRow;

/// The gongwen hub: every unit's agent connects to it.
#[derive(Debug, Parser)]
#[command(name = "gongwen-hub", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub until Ctrl-C or SIGTERM.
    Serve {
        /// The hub's configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// text, or json: one JSON object per line (overrides log_format).
        #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// One document: its metadata (never its content) and each recipient's state.
    Status {
        /// The document id.
        doc: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every (document, unit) past its deadline without being signed for:
    /// how late, and how far escalated.
    Overdue {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per unit (汇总): received, signed for on time / late, returned,
    /// pending, overdue now, median time to sign for; per sender: sent,
    /// fully signed for.
    Report {
        /// Documents accepted at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Documents accepted before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash-chained receipt log (works with the hub stopped too).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Counters since the running hub started (documents, bytes, resumed uploads).
    Stats {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration and everything it names, each problem on
    /// its own line: files, key and certificate, CA, CRL, the listen port,
    /// the database. Exit 0 only when all is well.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Back up the hub while it serves (or while stopped): a consistent copy
    /// of the store, the audit log and the content in a new folder, with
    /// SHA-256 sums in MANIFEST.sha256.
    Backup {
        /// A new (or empty) folder for the backup.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Restore a backup into the empty data folder hub.toml names (the hub
    /// stopped). The restored store gets a new generation, so agents offer
    /// again what they sent after the backup.
    Restore {
        /// The backup folder (made by gongwen-hub backup).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Renewed unit certificates (gongwen-certs renew) for the hub to
    /// deliver to their units over their links.
    Renewals {
        #[command(subcommand)]
        action: RenewalsAction,
    },
    /// The hub's database (PostgreSQL, `[store] postgres` in hub.toml).
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// List the nodes the running hub knows and whether they are connected.
    Nodes {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print a JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// List the federation peers ([[federation.peers]]): linked or not,
    /// routes, the age of each peer's revocation list, the last problem.
    Peers {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print a JSON array of objects.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RenewalsAction {
    /// Check a renewed certificate (our CA, valid, a unit's) and queue it:
    /// the hub pushes it to the unit when it is connected, and removes it
    /// once the unit connects with it.
    Add {
        /// The certificate (ID.crt from gongwen-certs renew).
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DbAction {
    /// Move a stopped embedded hub's state (records, queues, receipts,
    /// escalation schedule, audit chain, content) into the empty database
    /// hub.toml names.
    Import {
        /// The embedded hub's data directory.
        #[arg(long, value_name = "DATA_DIR")]
        from: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Recompute the chain and name the first entry that was altered.
    Verify {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// The flag, else hub.toml's `log_format` (a config that does not load is
/// reported by `serve` itself, in text).
fn log_format(cli: &Cli) -> gongwen_common::config::LogFormat {
    use gongwen_common::config::LogFormat;
    match &cli.command {
        Command::Serve { config, log_format } => log_format
            .as_deref()
            .and_then(LogFormat::parse)
            .or_else(|| HubConfig::load(config).ok().map(|c| c.log_format))
            .unwrap_or_default(),
        _ => LogFormat::Text,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gongwen_common::daemon::init_logging_as(log_format(&cli));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gongwen-hub: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "gongwen-hub: error: {}",
                gongwen_common::material::one_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, .. } => {
            let config = HubConfig::load(&config)?;
            let hub = Hub::bind(config).await?;
            hub.run(gongwen_common::daemon::shutdown_signal()).await?;
        }
        Command::Status { doc, config, json } => {
            let doc = gongwen_common::DocId::parse(&doc)?;
            let config = HubConfig::load(&config)?;
            let v = control::query(&config.data_dir, &Request::Status { doc }).await?;
            gongwen_common::say!("{}", display::doc_status(&v, json));
        }
        Command::Overdue { config, json } => {
            let config = HubConfig::load(&config)?;
            let v = control::query(&config.data_dir, &Request::Overdue).await?;
            gongwen_common::say!("{}", display::overdue(&v, json));
        }
        Command::Report {
            since,
            until,
            config,
            json,
        } => {
            let config = HubConfig::load(&config)?;
            let v = control::query(&config.data_dir, &Request::Report { since, until }).await?;
            gongwen_common::say!("{}", display::report(&v, json));
        }
        Command::Audit {
            action: AuditAction::Verify { config, json },
        } => {
            let config = HubConfig::load(&config)?;
            let (v, path) = match &config.store.postgres {
                None => {
                    let path = config.data_dir.join("audit.log");
                    let v = gongwen_hub::store::audit::verify(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    (v, path.display().to_string())
                }
                Some(conn) => {
                    use gongwen_hub::store::Store;
                    let store =
                        gongwen_hub::store::postgres::Postgres::open(conn, &config.store).await?;
                    let v = store.audit_verify().await;
                    store.close().await;
                    (v?, "in the database".to_string())
                }
            };
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&v)?);
            }
            match &v.first_broken {
                None => {
                    if !json {
                        gongwen_common::sayln!(
                            "audit log intact: {} entries{}",
                            v.entries,
                            if v.repeated > 0 {
                                format!(
                                    " ({} receipts logged twice after a crash; not tampering)",
                                    v.repeated
                                )
                            } else {
                                String::new()
                            }
                        );
                    }
                }
                Some((n, why)) => {
                    anyhow::bail!("audit log {path} is broken at entry {n}: {why}")
                }
            }
        }
        Command::Check { config } => {
            if !check(&config).await {
                std::process::exit(1);
            }
        }
        Command::Backup { out, config } => {
            let config = HubConfig::load(&config)?;
            if config.store.postgres.is_some() {
                anyhow::bail!(
                    "this hub keeps its state in PostgreSQL: back it up with the database's own tools (pg_dump, or continuous archiving with pg_basebackup)"
                );
            }
            // The manifest is signed with the hub's own key: loaded first,
            // so a backup that cannot be signed is not taken at all.
            let own = gongwen_common::material::load_own_tls(
                &config.path,
                &config.tls.cert,
                &config.tls.key,
                &config.tls.ca,
            )?;
            let signer = gongwen_hub::ops::backup::ManifestSigner {
                key_pkcs8: own.key.secret_der().to_vec(),
                cert_der: own.chain[0].to_vec(),
            };
            let now = time::OffsetDateTime::now_utc();
            let stamp = format!(
                "{}-{}",
                now.unix_timestamp_nanos() / 1_000_000,
                std::process::id()
            );
            let request = gongwen_hub::ops::control::Request::Snapshot {
                stamp: stamp.clone(),
            };
            let (staging, documents, generation, hub) =
                match gongwen_hub::ops::control::query(&config.data_dir, &request).await {
                    Ok(v) => (
                        PathBuf::from(v["staging"].as_str().unwrap_or_default()),
                        v["documents"].as_u64().unwrap_or(0) as usize,
                        v["generation"].as_str().unwrap_or_default().to_owned(),
                        v["hub"].as_str().unwrap_or_default().to_owned(),
                    ),
                    Err(gongwen_hub::HubError::NotRunning { .. }) => {
                        // Stopped: take the copy ourselves (the store's lock
                        // says so if a hub holds it after all).
                        let store = gongwen_hub::store::embedded::Embedded::open(&config.data_dir)?;
                        let staging =
                            gongwen_hub::ops::backup::staging_dir(&config.data_dir, &stamp);
                        use gongwen_hub::store::Store;
                        let documents = store.snapshot(&staging).await?;
                        let generation = store.generation().to_owned();
                        (staging, documents, generation, String::new())
                    }
                    Err(e) => return Err(e.into()),
                };
            let info = serde_json::json!({
                "taken_at": gongwen_common::timefmt::rfc3339(now),
                "hub": hub,
                "generation": generation,
                "documents": documents,
                "software": format!("gongwen-hub {}", env!("CARGO_PKG_VERSION")),
            });
            let written = gongwen_hub::ops::backup::write_backup(&staging, &out, &info, &signer);
            let left = std::fs::remove_dir_all(&staging).is_err() && staging.exists();
            let (files, bytes) = written.map_err(|e| {
                anyhow::anyhow!(
                    "{e}{}",
                    if left {
                        format!(
                            "; the snapshot is left in {} (run backup as root or as the hub's user, who own the data folder, and remove it)",
                            staging.display()
                        )
                    } else {
                        String::new()
                    }
                )
            })?;
            gongwen_common::sayln!(
                "backed up {documents} documents ({files} files, {bytes} bytes) to {}",
                out.display()
            );
            gongwen_common::sayln!(
                "  check it any time: cd {} && sha256sum -c {m} && openssl dgst -sha256 -verify <(openssl x509 -in {c} -pubkey -noout) -signature {s} {m}",
                out.display(),
                m = gongwen_hub::ops::backup::MANIFEST,
                c = gongwen_hub::ops::backup::SIGNER,
                s = gongwen_hub::ops::backup::SIGNATURE,
            );
        }
        Command::Restore { from, config } => {
            let config = HubConfig::load(&config)?;
            if config.store.postgres.is_some() {
                anyhow::bail!(
                    "this hub keeps its state in PostgreSQL: restore the database with its own tools (pg_restore, or point-in-time recovery)"
                );
            }
            let files =
                gongwen_hub::ops::backup::verify_backup(&from).map_err(anyhow::Error::msg)?;
            // Signed by a hub of this deployment (the CA and CRL in force).
            let ca = gongwen_common::pki::load_certs(&config.tls.ca)?.remove(0);
            let crl = gongwen_common::material::load_crl(&config.path, &config.tls.crl, &ca)?;
            let checker = gongwen_common::pki::CertChecker::new(&ca, Some(&crl))?;
            let signed_by = gongwen_hub::ops::backup::check_signature(
                &from,
                &checker,
                time::OffsetDateTime::now_utc(),
            )
            .map_err(anyhow::Error::msg)?;
            gongwen_hub::ops::backup::restore_files(&from, &files, &config.data_dir)
                .map_err(anyhow::Error::msg)?;
            let generation =
                gongwen_hub::store::embedded::Embedded::renew_generation(&config.data_dir)?;
            gongwen_common::sayln!(
                "restored {} files from {} into {} (signed by {signed_by}; every SHA-256 matched)",
                files.len(),
                from.display(),
                config.data_dir.display()
            );
            gongwen_common::sayln!(
                "  new store generation {generation}: when the hub starts, agents offer again what they sent after the backup"
            );
        }
        Command::Renewals {
            action: RenewalsAction::Add { file, config },
        } => {
            let config = HubConfig::load(&config)?;
            let (who, dest) =
                gongwen_hub::state::renewals::add(&config, &file, time::OffsetDateTime::now_utc())
                    .map_err(anyhow::Error::msg)?;
            gongwen_common::sayln!(
                "queued the renewal of {} (serial {}, valid until {}): {}",
                who.id,
                gongwen_common::pki::serial_hex(&who.serial),
                gongwen_common::timefmt::rfc3339(who.not_after),
                dest.display()
            );
            gongwen_common::sayln!(
                "  the hub delivers it the next time {} is connected; the unit reconnects with it",
                who.id
            );
        }
        Command::Db {
            action: DbAction::Import { from, config, json },
        } => {
            let config = HubConfig::load(&config)?;
            let done = gongwen_hub::store::import::import(&from, &config).await?;
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                gongwen_common::sayln!(
                    "imported {} documents ({} copies, {} still to deliver, {} bytes of content), {} receipts and notices to pass on, {} audit entries",
                    done.documents,
                    done.deliveries,
                    done.queued,
                    done.content_bytes,
                    done.pushes,
                    done.audit_entries
                );
            }
        }
        Command::Stats { config, json } => {
            let config = HubConfig::load(&config)?;
            let value = control::query(&config.data_dir, &Request::Stats).await?;
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&value)?);
            } else if let Some(map) = value.as_object() {
                for (k, v) in map {
                    gongwen_common::sayln!("{k:<22} {v}");
                }
            }
        }
        Command::Peers { config, json } => {
            let config = HubConfig::load(&config)?;
            let value = control::query(&config.data_dir, &Request::Peers).await?;
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print_peers(&value);
            }
        }
        Command::Nodes { config, json } => {
            let config = HubConfig::load(&config)?;
            let value = control::query(&config.data_dir, &Request::Nodes).await?;
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                let rows: Vec<NodeRow> = serde_json::from_value(value)?;
                // With hubs sharing a store, which one each unit is on.
                let shared = rows.iter().any(|r| r.hub.is_some());
                let hub_col = |h: Option<&str>| {
                    if shared {
                        format!("{:<24} ", h.unwrap_or("-"))
                    } else {
                        String::new()
                    }
                };
                gongwen_common::sayln!(
                    "{:<24} {:<11} {:<10} {}{:<8} {:<21} {:<22} NAME",
                    "ID",
                    "ROLE",
                    "CONNECTED",
                    hub_col(Some("HUB")),
                    "KEY",
                    "SINCE",
                    "ADDRESS"
                );
                for r in rows {
                    gongwen_common::sayln!(
                        "{:<24} {:<11} {:<10} {}{:<8} {:<21} {:<22} {}",
                        r.id,
                        r.role.as_str(),
                        if r.connected { "yes" } else { "no" },
                        hub_col(r.hub.as_deref()),
                        if r.revoked {
                            "revoked"
                        } else if r.can_receive {
                            "yes"
                        } else {
                            "no"
                        },
                        r.since.as_deref().unwrap_or("-"),
                        r.addr.as_deref().unwrap_or("-"),
                        r.name.unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

/// The `peers` table: one line per peer, then its last problem if any.
fn print_peers(value: &serde_json::Value) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    gongwen_common::sayln!(
        "{:<16} {:<10} {:<24} {:<7} {:<7} {:<12} {:<22} ROUTES",
        "DOMAIN",
        "LINKED",
        "ADDRESS",
        "UNITS",
        "QUEUED",
        "CRL AGE",
        "CRL NEXT UPDATE"
    );
    for p in value.as_array().map(Vec::as_slice).unwrap_or_default() {
        let links = p["links"].as_array().map(Vec::as_slice).unwrap_or_default();
        let addr = match p["via"].as_str() {
            Some(via) => format!("via {via}"),
            None => links
                .first()
                .map(|l| text(&l["addr"]))
                .or_else(|| p["dial"].as_array().and_then(|d| d.first()).map(text))
                .unwrap_or_else(|| "-".into()),
        };
        let units = p["units"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        let age = match p["crl_age_seconds"].as_i64() {
            Some(s) if s >= 86_400 => format!("{} d", s / 86_400),
            Some(s) if s >= 3_600 => format!("{} h", s / 3_600),
            Some(s) => format!("{s} s"),
            None => "none".into(),
        };
        let next = if p["crl_stale"].as_bool() == Some(true) && !p["crl_next_update"].is_null() {
            format!("{} STALE", text(&p["crl_next_update"]))
        } else {
            text(&p["crl_next_update"])
        };
        let routes: Vec<String> = p["routes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(text)
            .collect();
        gongwen_common::sayln!(
            "{:<16} {:<10} {:<24} {:<7} {:<7} {:<12} {:<22} {}",
            text(&p["domain"]),
            if p["connected"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            addr,
            units,
            p["queued"].as_u64().unwrap_or(0),
            age,
            next,
            if routes.is_empty() {
                "-".into()
            } else {
                routes.join(", ")
            }
        );
        if let Some(problem) = p["last_problem"].as_object() {
            gongwen_common::sayln!(
                "  last problem at {}: {}",
                problem.get("at").map(text).unwrap_or_default(),
                problem.get("what").map(text).unwrap_or_default()
            );
        }
    }
}

/// `gongwen-hub check` of `[federation]`: each peer's statement, and
/// whether this hub's certificate can dial.
fn check_federation(
    config: &HubConfig,
    fed: &gongwen_common::config::FederationConfig,
    ca: &rustls::pki_types::CertificateDer<'static>,
    found: &mut Vec<gongwen_common::material::Finding>,
) {
    use gongwen_common::material::Finding;
    let suite = gongwen_common::suite::Suite::of_ca(ca.as_ref()).unwrap_or(config.suite);
    gongwen_common::sayln!(
        "ok: {}: federation.domain: {} ({} peers)",
        config.path.display(),
        fed.domain,
        fed.peers.len()
    );
    for p in &fed.peers {
        match gongwen_hub::state::federation::load_statement(p, ca.as_ref(), suite) {
            Ok((st, _)) => {
                let fingerprint: Vec<String> = gongwen_common::digest::sha256(&st.peer_ca)
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect();
                gongwen_common::sayln!(
                    "ok: {}: federation peer {}: statement {} names its CA (SHA-256 {}); {}{}",
                    config.path.display(),
                    p.domain,
                    p.statement.display(),
                    fingerprint.join(":"),
                    if p.addr.is_empty() {
                        "it dials this hub".to_owned()
                    } else {
                        format!("dialed at {}", p.addr.join(", "))
                    },
                    if p.routes.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; routes {}",
                            p.routes
                                .iter()
                                .map(|r| r.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                );
            }
            Err(e) => found.push(Finding::problem(
                &format!("federation.peers {}", p.domain),
                e,
            )),
        }
    }
    if fed.peers.iter().any(|p| !p.addr.is_empty()) {
        let cert = gongwen_common::pki::load_certs(&config.tls.cert)
            .ok()
            .and_then(|c| c.into_iter().next());
        if let Some(cert) = cert
            && !gongwen_common::federation::can_dial(&cert)
        {
            found.push(Finding::problem(
                "tls.cert",
                "this hub's certificate lacks the client-auth purpose that dialing a federation peer needs (it was issued before federation): issue it again with gongwen-certs issue --role hub --renew",
            ));
        }
    }
}

/// `gongwen-hub check`: every finding on its own line; whether all is well.
async fn check(path: &std::path::Path) -> bool {
    use gongwen_common::material::{self, Finding, Named};
    let config = match HubConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            gongwen_common::sayln!("problem: {}", gongwen_common::material::one_line(&e));
            return false;
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let named = Named {
        cert: &config.tls.cert,
        key: &config.tls.key,
        ca: &config.tls.ca,
        crl: Some(&config.tls.crl),
    };
    let sm2 = material::check_sm2(&config.path, &named, &config.tls.sm2);
    let (mut found, identity) = material::check_all(named, now);
    found.extend(sm2);
    if let Some(id) = identity
        && id.role != gongwen_common::Role::Hub
    {
        found.push(Finding::problem(
            "tls.cert",
            format!(
                "{} is the {} certificate of {}, not a hub's",
                config.tls.cert.display(),
                id.role,
                id.id
            ),
        ));
    }
    if let Err(e) = material::check_data_dir(&config.path, "data_dir", &config.data_dir) {
        found.push(Finding::problem("data_dir", e.to_string()));
    }
    let ca = std::fs::read(&config.tls.ca).ok().and_then(|pem| {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(&pem).ok()
    });
    if let Some(ca) = &ca {
        use gongwen_common::suite::{Suite, check_hub_suite};
        match Suite::of_ca(ca.as_ref())
            .map_err(|e| e.to_string())
            .and_then(|of_ca| check_hub_suite(config.suite, of_ca).map(|()| of_ca))
        {
            Ok(suite) => gongwen_common::sayln!(
                "ok: {}: crypto suite {suite} ({})",
                config.path.display(),
                suite.algorithms()
            ),
            Err(e) => found.push(Finding::problem("crypto.suite", e)),
        }
    }
    if let (Some(fed), Some(ca)) = (&config.federation, &ca) {
        check_federation(&config, fed, ca, &mut found);
    }
    let mut enrolled = 0;
    if let Some(path) = &config.tls.directory
        && let Some(ca) = &ca
    {
        match gongwen_hub::state::enrolled::load(path, ca) {
            Ok(dir) => {
                enrolled = dir.entries.len();
                gongwen_common::sayln!(
                    "ok: {}: tls.directory: {enrolled} enrolled units",
                    config.path.display(),
                )
            }
            Err(e) => found.push(Finding::problem("tls.directory", e)),
        }
    }
    let max = gongwen_hub::rules::admission::max_connections(config.max_connections, enrolled);
    gongwen_common::sayln!(
        "ok: {}: limits.max_connections: {max} units connected at once ({})",
        config.path.display(),
        match config.max_connections {
            Some(_) => "as configured".to_owned(),
            None => format!(
                "from {enrolled} enrolled units and a quarter more, at least {}",
                gongwen_hub::rules::admission::MIN_CONNECTIONS
            ),
        }
    );
    if let Some(n) = config.max_connections
        && n < enrolled
    {
        found.push(Finding::warning(
            "limits.max_connections",
            format!("{n} is fewer than the {enrolled} enrolled units: the others cannot connect while it is reached"),
        ));
    }
    match std::net::UdpSocket::bind(config.listen) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => found.push(Finding::problem(
            "listen",
            format!("{} is in use (is a hub already running?)", config.listen),
        )),
        Err(e) => found.push(Finding::problem(
            "listen",
            format!("cannot listen on {}: {e}", config.listen),
        )),
    }
    if let Some(conn) = &config.store.postgres {
        use gongwen_hub::store::postgres::{SCHEMA_VERSION, probe};
        match probe(conn).await {
            Ok((_, schema)) if schema > SCHEMA_VERSION => found.push(Finding::problem(
                "store.postgres",
                format!(
                    "the database holds schema version {schema}, written by a newer gongwen-hub (this one knows {SCHEMA_VERSION})"
                ),
            )),
            Ok((version, schema)) => gongwen_common::sayln!(
                "ok: {}: store.postgres: PostgreSQL {version}, schema version {schema}",
                config.path.display()
            ),
            Err(e) => found.push(Finding::problem("store.postgres", e.to_string())),
        }
    }
    material::report(&config.path, &found)
}
