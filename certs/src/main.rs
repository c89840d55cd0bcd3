//! `gongwen-certs`: the administrator's certificate authority tool.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use gongwen_certs::ca::{CA_CERT, DEFAULT_CRL_DAYS, DIRECTORY_FILE, REASONS};
use gongwen_certs::{Ca, IssueRequest, Validity};
use gongwen_common::fsutil::write_atomic;
use gongwen_common::{NodeId, Role};
use time::OffsetDateTime;

/// gongwen's certificate authority: issue, sign, revoke and list the
/// certificates of the hub and of every unit.
#[derive(Debug, Parser)]
#[command(name = "gongwen-certs", version)]
struct Cli {
    /// Directory of the CA (ca.key, ca.crt, crl.pem, registry.json).
    #[arg(long, global = true, env = "GONGWEN_CA_DIR", value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Hub,
    Node,
    Supervisor,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Hub => Role::Hub,
            RoleArg::Node => Role::Node,
            RoleArg::Supervisor => Role::Supervisor,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NodeRoleArg {
    Node,
    Supervisor,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new CA: key (0600), self-signed certificate, empty CRL, registry.
    Init {
        /// The CA's name, e.g. "黑龙江省公文交换 CA".
        #[arg(long)]
        name: String,
        /// Validity of the CA certificate in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Days until the CRL must be renewed (past that the hub refuses everyone).
        #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
        crl_days: u32,
        /// The algorithms of the deployment's documents and receipts:
        /// standard (ECDSA P-256, SHA-256, AES-256-GCM) or gm (国密: SM2,
        /// SM3, SM4). Written into the CA certificate; hub.toml's
        /// [crypto] suite must say the same.
        #[arg(long, default_value = "standard")]
        suite: gongwen_common::suite::Suite,
        /// GM only: the SM2 distinguishing id every unit's signatures use
        /// (recorded in each unit's key binding); default 1234567812345678.
        #[arg(long)]
        sm2_distid: Option<String>,
    },
    /// Issue a certificate and a fresh key for the hub or a unit.
    Issue {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Node id: lower-case letters, digits and '-', e.g. harbin-gov.
        #[arg(long)]
        id: String,
        /// Display name, e.g. 哈尔滨市人民政府.
        #[arg(long)]
        name: Option<String>,
        /// Extra DNS name of the hub (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        /// IP address of the hub (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Directory to write ID.crt, ID.key and ca.crt into.
        #[arg(long)]
        out: PathBuf,
        /// Issue even though the id already has a valid certificate.
        #[arg(long)]
        renew: bool,
    },
    /// Sign a CSR made on the unit by `gongwen-agent keygen` (the key stays there).
    Sign {
        /// The CSR file (ID.csr).
        #[arg(long)]
        csr: PathBuf,
        /// The key binding made with it (ID.binding): the unit goes into
        /// the unit directory and can receive before its agent connects.
        #[arg(long, value_name = "FILE")]
        binding: Option<PathBuf>,
        #[arg(long, value_enum)]
        role: NodeRoleArg,
        /// Display name, e.g. 大庆市人民政府.
        #[arg(long)]
        name: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Where to write the certificate; ca.crt is written beside it.
        #[arg(long)]
        out: PathBuf,
        /// Sign even though the id already has a valid certificate.
        #[arg(long)]
        renew: bool,
    },
    /// Revoke every certificate of a node and write a fresh CRL.
    Revoke {
        #[arg(long)]
        id: String,
        /// Why: unspecified, key-compromise, affiliation-changed, superseded,
        /// cessation-of-operation, privilege-withdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// Days until the new CRL must be renewed.
        #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
        crl_days: u32,
    },
    /// Re-sign the CRL with a fresh next-update time (run it before it goes stale).
    Crl {
        /// Days until the CRL must be renewed again.
        #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
        days: u32,
    },
    /// Enroll units in bulk from a CSV (header `id,name,role`): for each, a
    /// certificate and key, ca.crt, a ready agent.toml and 安装说明.txt in
    /// OUT/ID/, and OUT/ID.tar.gz. Units enrolled before are skipped.
    Enroll {
        /// The CSV of units (UTF-8, with or without a BOM).
        #[arg(long, value_name = "FILE")]
        units: PathBuf,
        /// The hub's address as agents reach it (repeat for several hubs).
        #[arg(long, value_name = "HOST:PORT", required = true)]
        hub: Vec<String>,
        /// The name in the hub's certificate.
        #[arg(long, default_value = "hub")]
        hub_name: String,
        /// Validity of each certificate in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Where the bundles go.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Certify a unit's current key again, for renewal without a visit:
    /// writes OUT/ID.crt; hand it to the hub (gongwen-hub renewals add),
    /// which delivers it to the unit. With --expiring-within, every unit
    /// whose certificate expires within that span.
    Renew {
        /// The unit to renew.
        #[arg(
            long,
            required_unless_present = "expiring_within",
            conflicts_with = "expiring_within"
        )]
        id: Option<String>,
        /// Renew every unit whose certificate expires within this span, e.g. 30d.
        #[arg(long, value_name = "SPAN")]
        expiring_within: Option<String>,
        /// The unit's current certificate, for units issued before the CA
        /// kept copies of what it issued.
        #[arg(long, value_name = "FILE", conflicts_with = "expiring_within")]
        cert: Option<PathBuf>,
        /// Validity of the new certificate in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Where to write ID.crt.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Write the signed unit directory (directory.gwd in the CA folder)
    /// again: every unit with a valid certificate and an enrolled key.
    /// enroll, sign --binding and revoke write it by themselves.
    Directory,
    /// Trust another deployment (a domain) for federation: sign its name
    /// and the CA certificate its administrator handed over, for the hub's
    /// [[federation.peers]] statement. Check the certificate's fingerprint
    /// with the peer's administrator by a second channel first.
    Federate {
        /// The peer's domain name, e.g. national or jilin.
        #[arg(long)]
        domain: String,
        /// The peer's CA certificate (PEM or DER).
        #[arg(long, value_name = "FILE")]
        peer_ca: PathBuf,
        /// Where to write the statement, e.g. federation/national.fed.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// List every certificate issued: id, name, role, serial, not_after, status.
    List {
        /// Print a JSON array of objects.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "gongwen-certs: error: {}",
                gongwen_common::material::one_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

/// Write the unit directory and say what is in it.
fn write_directory(ca: &Ca, now: OffsetDateTime) -> anyhow::Result<()> {
    let (listed, without) = ca.write_directory(now)?;
    gongwen_common::sayln!(
        "unit directory: {} ({listed} units); the hub reads it as [tls] directory and reloads it when it changes",
        ca.dir().join(DIRECTORY_FILE).display()
    );
    if !without.is_empty() {
        gongwen_common::sayln!(
            "  not in it, for want of an encryption key made at enrollment (known to the hub once their agent connects): {}",
            without.join(", ")
        );
    }
    Ok(())
}

/// The DER of a certificate given as PEM or DER.
fn pem_or_der(bytes: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    match rustls_pki_types::CertificateDer::from_pem_slice(bytes) {
        Ok(c) => c.to_vec(),
        Err(_) => bytes.to_vec(),
    }
}

fn node_id(s: &str) -> anyhow::Result<NodeId> {
    Ok(NodeId::parse(s)?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Some(dir) = cli.ca_dir else {
        bail!("say which CA to use with --ca-dir DIR (or GONGWEN_CA_DIR)");
    };
    let now = OffsetDateTime::now_utc();
    match cli.command {
        Command::Enroll {
            units,
            hub,
            hub_name,
            days,
            out,
        } => {
            let text = std::fs::read_to_string(&units)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", units.display()))?;
            let rows = gongwen_certs::enroll::parse_units(&text)?;
            for h in &hub {
                if h.rsplit_once(':')
                    .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                {
                    bail!("--hub {h:?} is not HOST:PORT such as 10.0.0.1:7443");
                }
            }
            let mut ca = Ca::open(&dir)?;
            let plan = gongwen_certs::enroll::EnrollPlan {
                hubs: hub,
                hub_name,
                days,
                out: out.clone(),
            };
            let done = gongwen_certs::enroll::enroll(&mut ca, &rows, &plan, now)?;
            let (mut issued, mut skipped) = (0, 0);
            for d in &done {
                use gongwen_certs::enroll::Enrolled;
                match d {
                    Enrolled::Issued { id, serial } => {
                        issued += 1;
                        gongwen_common::sayln!(
                            "enrolled {id} (serial {serial}): {}",
                            out.join(format!("{id}.tar.gz")).display()
                        );
                    }
                    Enrolled::AlreadyEnrolled { id } => {
                        skipped += 1;
                        gongwen_common::sayln!("{id}: already enrolled, skipped");
                    }
                    Enrolled::CertifiedElsewhere { id, serial } => {
                        skipped += 1;
                        gongwen_common::sayln!(
                            "{id}: already has a valid certificate (serial {serial}) but no bundle in {}; skipped (gongwen-certs issue --renew makes a new key and certificate)",
                            out.display()
                        );
                    }
                }
            }
            gongwen_common::sayln!(
                "{issued} enrolled, {skipped} skipped, {} in {}",
                rows.len(),
                units.display()
            );
            write_directory(&ca, now)?;
        }
        Command::Renew {
            id,
            expiring_within,
            cert,
            days,
            out,
        } => {
            let mut ca = Ca::open(&dir)?;
            let ids = match (&id, &expiring_within) {
                (Some(id), _) => vec![node_id(id)?],
                (None, Some(span)) => {
                    let within = gongwen_common::timefmt::parse_duration(span).map_err(|e| {
                        anyhow::anyhow!("--expiring-within {span:?}: {e} (write it as 30d)")
                    })?;
                    let within = time::Duration::try_from(within)
                        .map_err(|_| anyhow::anyhow!("--expiring-within {span:?} is too long"))?;
                    ca.expiring(now, within)
                }
                (None, None) => bail!("say which unit (--id ID) or --expiring-within 30d"),
            };
            if ids.is_empty() {
                gongwen_common::sayln!(
                    "no unit certificate expires within {}",
                    expiring_within.unwrap_or_default()
                );
                return Ok(());
            }
            let current = match &cert {
                Some(path) => {
                    let pem = std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    use rustls_pki_types::pem::PemObject;
                    Some(
                        rustls_pki_types::CertificateDer::from_pem_slice(&pem)
                            .map_err(|e| {
                                anyhow::anyhow!("{} is not a PEM certificate: {e}", path.display())
                            })?
                            .to_vec(),
                    )
                }
                None => None,
            };
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            for id in ids {
                let issued = ca.renew(&id, current.as_deref(), Validity::days_from(now, days))?;
                let path = out.join(format!("{id}.crt"));
                write_atomic(&path, issued.cert_pem.as_bytes(), 0o644)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                gongwen_common::sayln!(
                    "renewed {id} (serial {}, valid {days} days, same key): {}",
                    issued.serial,
                    path.display()
                );
            }
            gongwen_common::sayln!(
                "  hand them to the hub: gongwen-hub renewals add {}/ID.crt --config hub.toml (the hub delivers each to its unit)",
                out.display()
            );
        }
        Command::Directory => {
            let ca = Ca::open(&dir)?;
            write_directory(&ca, now)?;
        }
        Command::Init {
            name,
            days,
            crl_days,
            suite,
            sm2_distid,
        } => {
            if let Some(distid) = &sm2_distid {
                // Refused before anything is made.
                if suite != gongwen_common::suite::Suite::Gm {
                    bail!("--sm2-distid is for a GM CA (--suite gm)");
                }
                gongwen_common::gm::check_distid(distid).map_err(anyhow::Error::msg)?;
            }
            let ca = Ca::init_for(&dir, &name, now, days, crl_days, suite)?;
            if let Some(distid) = &sm2_distid {
                ca.set_sm2_distid(distid)?;
            }
            gongwen_common::sayln!("created CA {name:?} in {}", dir.display());
            gongwen_common::sayln!(
                "  suite:       {suite} ({}); set [crypto] suite = \"{suite}\" in hub.toml",
                suite.algorithms()
            );
            if suite == gongwen_common::suite::Suite::Gm {
                gongwen_common::sayln!("  SM2 distid:  {}", ca.sm2_distid()?);
            }
            gongwen_common::sayln!("  certificate: {}", dir.join(CA_CERT).display());
            gongwen_common::sayln!(
                "  CRL:         {} (renew within {crl_days} days: gongwen-certs crl)",
                dir.join("crl.pem").display()
            );
        }
        Command::Issue {
            role,
            id,
            name,
            dns,
            ip,
            days,
            out,
            renew,
        } => {
            let id = node_id(&id)?;
            let mut ca = Ca::open(&dir)?;
            let req = IssueRequest {
                id: id.clone(),
                role: role.into(),
                name,
                dns,
                ips: ip,
                validity: Validity::days_from(now, days),
                renew,
            };
            let issued = ca.issue(&req, now)?;
            ca.write_issued(&out, &id, &issued)?;
            gongwen_common::sayln!(
                "issued {} certificate for {id} (serial {}, valid {days} days)",
                req.role,
                issued.serial
            );
            let mut files = vec![format!("{id}.crt"), format!("{id}.key"), CA_CERT.to_owned()];
            // A GM deployment signs and encrypts documents with SM2 keys
            // of their own, bound to the certificate's key.
            if ca.suite()? == gongwen_common::suite::Suite::Gm {
                let keys = ca.make_sm2_keys(&id, &issued, now)?;
                ca.write_sm2_keys(&out, &id, &keys)?;
                files.extend([
                    format!("{id}.sm2-sign.key"),
                    format!("{id}.sm2-enc.key"),
                    format!("{id}.sm2.binding"),
                ]);
            }
            for f in files {
                gongwen_common::sayln!("  {}", out.join(f).display());
            }
        }
        Command::Sign {
            csr,
            binding,
            role,
            name,
            days,
            out,
            renew,
        } => {
            let role = match role {
                NodeRoleArg::Node => Role::Node,
                NodeRoleArg::Supervisor => Role::Supervisor,
            };
            let csr_pem = std::fs::read_to_string(&csr)
                .with_context(|| format!("cannot read {}", csr.display()))?;
            let mut ca = Ca::open(&dir)?;
            // A binding that will not do is refused before anything is
            // issued, so the unit is not left with a certificate and no way
            // to receive.
            let binding = match binding {
                Some(path) => {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    ca.binding_request(&bytes, &Ca::csr_public_key(&csr_pem)?)?;
                    Some(bytes)
                }
                None => None,
            };
            let (id, cert_pem) = ca.sign_csr(
                &csr_pem,
                role,
                name,
                Validity::days_from(now, days),
                renew,
                now,
            )?;
            write_atomic(&out, cert_pem.as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", out.display()))?;
            let ca_out = out.parent().unwrap_or(Path::new(".")).join(CA_CERT);
            write_atomic(&ca_out, ca.cert_pem().as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", ca_out.display()))?;
            gongwen_common::sayln!("signed {role} certificate for {id}: {}", out.display());
            gongwen_common::sayln!("  CA certificate: {}", ca_out.display());
            if let Some(bytes) = binding {
                let complete = ca.complete_binding(&id, &bytes, &cert_pem)?;
                let name = match ca.suite()? {
                    gongwen_common::suite::Suite::Standard => format!("{id}.binding"),
                    gongwen_common::suite::Suite::Gm => format!("{id}.sm2.binding"),
                };
                let path = out.parent().unwrap_or(Path::new(".")).join(name);
                write_atomic(&path, &complete, 0o644)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                gongwen_common::sayln!("  key binding:    {}", path.display());
                write_directory(&ca, now)?;
            }
        }
        Command::Revoke {
            id,
            reason,
            crl_days,
        } => {
            let id = node_id(&id)?;
            if !REASONS.iter().any(|(n, _)| *n == reason) {
                let names: Vec<_> = REASONS.iter().map(|(n, _)| *n).collect();
                bail!(
                    "unknown reason {reason:?}; use one of: {}",
                    names.join(", ")
                );
            }
            let mut ca = Ca::open(&dir)?;
            let serials = ca.revoke(&id, &reason, now, crl_days)?;
            gongwen_common::sayln!(
                "revoked {id} (serial {}); new CRL written to {}",
                serials.join(", "),
                dir.join("crl.pem").display()
            );
            gongwen_common::sayln!("  the hub picks it up by itself and cuts {id} off");
            if dir.join(DIRECTORY_FILE).exists() {
                write_directory(&ca, now)?;
            }
        }
        Command::Federate {
            domain,
            peer_ca,
            out,
        } => {
            let domain = gongwen_common::federation::Domain::parse(&domain)?;
            let bytes = std::fs::read(&peer_ca)
                .with_context(|| format!("cannot read {}", peer_ca.display()))?;
            let ca = Ca::open(&dir)?;
            let statement = ca
                .federate(domain.clone(), &bytes, now)
                .with_context(|| format!("{}", peer_ca.display()))?;
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            write_atomic(&out, &statement, 0o644)
                .with_context(|| format!("cannot write {}", out.display()))?;
            let fingerprint = gongwen_common::digest::sha256(&pem_or_der(&bytes));
            gongwen_common::sayln!("federation statement for {domain}: {}", out.display());
            gongwen_common::sayln!(
                "  peer CA SHA-256 fingerprint: {}",
                fingerprint
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            );
            gongwen_common::sayln!(
                "  compare it with the peer's administrator (openssl x509 -noout -fingerprint -sha256 -in ca.crt), then name the statement in hub.toml:"
            );
            gongwen_common::sayln!(
                "  [[federation.peers]]\n  domain = \"{domain}\"\n  statement = \"{}\"",
                out.display()
            );
        }
        Command::Crl { days } => {
            let mut ca = Ca::open(&dir)?;
            ca.write_crl(now, days)?;
            gongwen_common::sayln!(
                "CRL renewed for {days} days: {}",
                dir.join("crl.pem").display()
            );
        }
        Command::List { json } => {
            let ca = Ca::open(&dir)?;
            let rows = ca.list(now);
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                gongwen_common::sayln!(
                    "{:<24} {:<11} {:<34} {:<21} {:<8} NAME",
                    "ID",
                    "ROLE",
                    "SERIAL",
                    "NOT AFTER",
                    "STATUS"
                );
                let expiring = rows.iter().filter(|r| r.expires_in_days.is_some()).count();
                for r in rows {
                    // A valid certificate that expires within 30 days is
                    // marked, with the days left.
                    let status = match r.expires_in_days {
                        Some(d) => format!("expires in {d} d"),
                        None => r.status.as_str().to_owned(),
                    };
                    gongwen_common::sayln!(
                        "{:<24} {:<11} {:<34} {:<21} {:<8} {}",
                        r.id,
                        r.role,
                        r.serial,
                        r.not_after,
                        status,
                        r.name.unwrap_or_default()
                    );
                }
                if expiring > 0 {
                    eprintln!(
                        "{expiring} certificate(s) expire within 30 days: issue new ones before then (gongwen-certs issue --renew)"
                    );
                }
            }
        }
    }
    Ok(())
}
