//! `gongwen-agent`: parse flags, load the configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gongwen_agent::Agent;
use gongwen_agent::front::control::{self, DocStatus, Request};
use gongwen_agent::incoming::clerk::InboxRow;
use gongwen_agent::outgoing::outbox::SendRequest;
use gongwen_agent::unit::accounts::{self, Accounts};
use gongwen_agent::unit::folders::Folders;
use gongwen_agent::unit::keygen::keygen_with;
use gongwen_common::config::AgentConfig;
use gongwen_common::display;
use gongwen_common::{DocId, NodeId};

/// The gongwen agent: one per unit, connected to the hub.
#[derive(Debug, Parser)]
#[command(name = "gongwen-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The GB/T 9704 elements `send` states (see gongwen_common::elements).
#[derive(Debug, clap::Args)]
struct ElementArgs {
    /// 发文机关署名 (repeat it for a 联合行文).
    #[arg(long = "issuer")]
    issuers: Vec<String>,
    /// 签发人 (repeat it for several); required for 请示 and 报告.
    #[arg(long = "signer")]
    signers: Vec<String>,
    /// 成文日期, YYYY-MM-DD.
    #[arg(long)]
    written_on: Option<String>,
    /// 份号: number each recipient's copy.
    #[arg(long)]
    copy_no: bool,
    /// 附件说明: one per attachment, in file order (repeat it).
    #[arg(long = "attachments-note")]
    attachments_note: Vec<String>,
    /// 印发机关.
    #[arg(long)]
    printed_by: Option<String>,
    /// 印发日期, YYYY-MM-DD.
    #[arg(long)]
    printed_on: Option<String>,
    /// 公开属性: 主动公开, 依申请公开 or 不予公开.
    #[arg(long)]
    publicity: Option<String>,
}

impl ElementArgs {
    fn into_elements(self) -> Result<gongwen_common::elements::Elements, String> {
        use gongwen_common::elements::{Elements, Publicity};
        let publicity = self
            .publicity
            .map(|p| {
                Publicity::parse(&p).ok_or_else(|| {
                    format!("--publicity {p:?}: give 主动公开, 依申请公开 or 不予公开")
                })
            })
            .transpose()?;
        Ok(Elements {
            issuers: self.issuers,
            signers: self.signers,
            written_on: self.written_on,
            copy_numbers: self.copy_no,
            attachments_note: self.attachments_note,
            printed_by: self.printed_by.unwrap_or_default(),
            printed_on: self.printed_on,
            publicity,
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent until Ctrl-C or SIGTERM, reconnecting to the hub as needed.
    Run {
        /// The agent's configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// text, or json: one JSON object per line (overrides log_format).
        #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Check the configuration and everything it names, each problem on its
    /// own line — files, key and certificate, CA, the root folder — and
    /// whether the hubs answer and admit this unit (asked of the running
    /// agent if there is one). Exit 0 only when all is well.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Send files as one document (the first is the main text, the rest
    /// attachments) through the running agent, and wait until the hub has it.
    Send {
        /// The files; the originals stay where they are.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Main recipients (主送): unit ids or group names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// Copies (抄送): unit ids or group names, comma-separated.
        #[arg(long, value_delimiter = ',')]
        cc: Vec<String>,
        /// 标题 (default: the first file's name without extension).
        #[arg(long)]
        title: Option<String>,
        /// 发文字号, e.g. 黑政发〔2026〕12号.
        #[arg(long)]
        doc_number: Option<String>,
        /// 文种: 通知, 函, 报告, 请示, 纪要 …
        #[arg(long)]
        doc_type: Option<String>,
        /// normal | urgent | extra-urgent (平件 / 加急 / 特急).
        #[arg(long)]
        urgency: Option<String>,
        /// Acknowledgment deadline: a time (2027-03-01T17:00:00+08:00) or a duration ("3d").
        #[arg(long)]
        deadline: Option<String>,
        /// Cover note.
        #[arg(long)]
        note: Option<String>,
        /// Ask each recipient for an answer: decision (批复) or report (上报).
        #[arg(long, value_parser = ["decision", "report"])]
        reply: Option<String>,
        /// By when the answer is due: a time or a span such as "5d".
        #[arg(long, requires = "reply")]
        reply_by: Option<String>,
        #[command(flatten)]
        elements: Box<ElementArgs>,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Return as soon as the document is queued, without waiting for the hub.
        #[arg(long)]
        no_wait: bool,
    },
    /// 转发: pass a received document on to other units — a new document
    /// carrying the original's files unchanged and its first issuer's
    /// signed header, which every recipient verifies.
    Forward {
        doc: String,
        /// Main recipients (主送): unit ids or group names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// Copies (抄送).
        #[arg(long, value_delimiter = ',')]
        cc: Vec<String>,
        /// Cover note (转发说明).
        #[arg(long)]
        note: Option<String>,
        /// Who forwards it (经办人).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// 汇总: gather the answers to a document this unit sent (one that asked
    /// for answers) into DIR: a folder per answering unit, and 汇总表.xlsx /
    /// 汇总表.csv with a row for every recipient, answered or not.
    Collect {
        doc: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Answer a received document that asked for an answer (批复 or 上报):
    /// a document of its own to the asking unit, linked to the question.
    /// Signs for the document first if it was not signed for yet.
    Reply {
        /// The document answered.
        doc: String,
        /// The answer's files (a report's); a decision without files gets
        /// a short main text saying the decision.
        files: Vec<PathBuf>,
        /// approved (同意), not-approved (不同意) or revise (修改后再报), when
        /// a decision was asked.
        #[arg(long)]
        decision: Option<String>,
        /// Cover note (the decision's words).
        #[arg(long)]
        note: Option<String>,
        /// 标题 (default: 关于《…》的批复 / 的报告).
        #[arg(long)]
        title: Option<String>,
        /// An earlier answer of ours this one corrects.
        #[arg(long)]
        supersedes: Option<String>,
        /// Copies (抄送) of the answer: unit ids or group names,
        /// comma-separated (it goes to the unit that asked in any case).
        #[arg(long, value_delimiter = ',')]
        cc: Vec<String>,
        /// Who answers (经办人); the sign-for names them too.
        #[arg(long)]
        by: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Documents this unit received: sender, title, number, urgency,
    /// deadline, state, how often urged.
    Inbox {
        /// Only those still to sign for or return.
        #[arg(long)]
        pending: bool,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Sign for a received document (签收); the sender gets a receipt
    /// signed by this unit naming the person.
    Ack {
        doc: String,
        /// Who signs for it.
        #[arg(long)]
        by: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Return a received document (退回) with a reason the sender sees.
    Reject {
        doc: String,
        /// Why it is returned (required).
        #[arg(long)]
        reason: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Withdraw a document this unit sent (撤回) from every unit that has
    /// not signed for it yet.
    Recall {
        doc: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Urge (催办) the units that have not yet signed for a document this
    /// unit sent; counted in their urge count like the hub's own.
    Urge {
        doc: String,
        /// Only these units (default: every unit that has not signed).
        #[arg(long = "unit", value_name = "ID")]
        units: Vec<String>,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write a document's evidence (signed header, receipts, certificates,
    /// CA, CRL) with a verify.sh that checks it with openssl alone.
    Evidence {
        doc: String,
        /// Folder to write into.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Supervision queries through the hub (supervisor units only).
    Supervise {
        #[command(subcommand)]
        query: SuperviseQuery,
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
    /// Draw one page of an OFD as a PNG (or, without --page, print how many
    /// pages it has). The console runs this as a child under limits.
    #[command(hide = true)]
    RenderOfd {
        file: PathBuf,
        #[arg(long, conflicts_with = "pages", requires = "out")]
        page: Option<u32>,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        pages: bool,
    },
    /// Redraw a raster image as a plain PNG (the console shows received
    /// images this way, run as a child under limits).
    #[command(hide = true)]
    RenderImage {
        file: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Electronic seals (验章, GB/T 38540): check every seal of an OFD.
    Seal {
        #[command(subcommand)]
        action: SealAction,
    },
    /// Console users: add, list, change a password, remove.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Bearer tokens for scripts using the console's JSON API.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Make this unit's key (ID.key, 0600) and a CSR (ID.csr) for the administrator.
    Keygen {
        /// This unit's node id, e.g. daqing-gov.
        #[arg(long)]
        id: String,
        /// Directory to write ID.key and ID.csr into.
        #[arg(long)]
        out: PathBuf,
        /// The deployment's crypto suite (its CA's): gm also makes the
        /// unit's SM2 signing and encryption keys and their binding.
        #[arg(long, default_value = "standard")]
        suite: gongwen_common::suite::Suite,
        /// GM only: the SM2 distinguishing id the deployment chose
        /// (`gongwen-certs init --sm2-distid`); default 1234567812345678.
        #[arg(long, default_value = gongwen_common::gm::DEFAULT_DISTID)]
        sm2_distid: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Add a user; the password is read from standard input (twice on a
    /// terminal, without echo), never from an argument.
    Add {
        /// Login name: a-z, 0-9, '.', '_', '-'.
        name: String,
        /// The name pages show and receipts carry, e.g. 张三.
        #[arg(long)]
        display_name: String,
        /// clerk (收发员) or admin.
        #[arg(long, default_value = "clerk")]
        role: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// List the users.
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (read from standard input); logs them out.
    Passwd {
        name: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove a user and their tokens; logs them out.
    Remove {
        name: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Make a token for a user; it is printed once, alone on the last line.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// List tokens (their ids and users; the tokens themselves are not kept).
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke {
        id: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SuperviseQuery {
    /// One document: each unit's state, deadline, lateness, escalation.
    Status {
        doc: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Every (document, unit) past its deadline without being signed for.
    Overdue {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Per-unit and per-sender figures over a period.
    Report {
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SealAction {
    /// Check each seal of an OFD file: the document unchanged since it was
    /// sealed, the signer's and the seal maker's SM2 signatures, the seal's
    /// validity and certificate list, and both certificates' chains to the
    /// seal roots. Exit 0 only when the file has seals and all are valid.
    Verify {
        file: PathBuf,
        /// Seal trust roots (PEM or DER), instead of or besides agent.toml's.
        #[arg(long = "roots", value_name = "FILE")]
        roots: Vec<PathBuf>,
        /// Revocation lists of those roots (PEM or DER).
        #[arg(long = "crls", value_name = "FILE")]
        crls: Vec<PathBuf>,
        /// Take `[seals]` roots and CRLs from this agent.toml.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// The flag, else agent.toml's `log_format` (a config that does not load
/// is reported by `run` itself, in text).
fn log_format(cli: &Cli) -> gongwen_common::config::LogFormat {
    use gongwen_common::config::LogFormat;
    match &cli.command {
        Command::Run { config, log_format } => log_format
            .as_deref()
            .and_then(LogFormat::parse)
            .or_else(|| AgentConfig::load(config).ok().map(|c| c.log_format))
            .unwrap_or_default(),
        _ => LogFormat::Text,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gongwen_common::daemon::init_logging_as(log_format(&cli));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "gongwen-agent: error: {}",
                gongwen_common::material::one_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { config } => {
            let runtime = tokio::runtime::Runtime::new()?;
            if !runtime.block_on(check(&config)) {
                std::process::exit(1);
            }
        }
        Command::Run { config, .. } => {
            let config = AgentConfig::load(&config)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let agent = Agent::new(config)?;
                agent.run(gongwen_common::daemon::shutdown_signal()).await
            })?;
        }
        Command::Send {
            files,
            to,
            cc,
            title,
            doc_number,
            doc_type,
            urgency,
            deadline,
            note,
            reply,
            reply_by,
            elements,
            config,
            no_wait,
        } => {
            let config = AgentConfig::load(&config)?;
            let socket = Folders::new(&config.root).control_socket();
            // The agent runs elsewhere: give it absolute paths.
            let files = absolute(&files)?;
            let req = SendRequest {
                files,
                to,
                cc,
                title,
                doc_number,
                doc_type,
                urgency,
                deadline,
                note,
                reply,
                reply_by,
                elements: elements.into_elements().map_err(anyhow::Error::msg)?,
                ..Default::default()
            };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(send(&socket, req, no_wait))?;
        }
        Command::Status { doc, config, json } => {
            let doc = doc.map(|d| DocId::parse(&d)).transpose()?;
            let value = ask(&config, &Request::Status { doc })?;
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                let docs: Vec<DocStatus> = if doc.is_some() {
                    vec![serde_json::from_value(value)?]
                } else {
                    serde_json::from_value(value)?
                };
                print_status(&docs);
            }
        }
        Command::Inbox {
            pending,
            config,
            json,
        } => {
            let v = ask(&config, &Request::Inbox { pending })?;
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<InboxRow> = serde_json::from_value(v)?;
                if rows.is_empty() {
                    gongwen_common::sayln!("no documents");
                }
                for r in rows {
                    gongwen_common::sayln!(
                        "{}  {:<13} {:<12} from {:<16} {}  {}{}",
                        r.doc_id,
                        r.state,
                        r.urgency,
                        r.sender,
                        r.doc_number,
                        r.title,
                        if r.urge_count > 0 {
                            format!("  (urged {}x)", r.urge_count)
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
        Command::Forward {
            doc,
            to,
            cc,
            note,
            by,
            config,
        } => {
            let doc = DocId::parse(&doc)?;
            let v = ask(
                &config,
                &Request::Forward(Box::new(gongwen_agent::actions::forward::ForwardRequest {
                    doc,
                    to,
                    cc,
                    note,
                    by,
                })),
            )?;
            gongwen_common::sayln!(
                "forward {} of {doc} queued; `gongwen-agent status` follows it",
                v["doc_id"].as_str().unwrap_or("?")
            );
        }
        Command::Collect { doc, out, config } => {
            let doc = DocId::parse(&doc)?;
            std::fs::create_dir_all(&out)?;
            let out = std::fs::canonicalize(&out)?;
            let v = ask(&config, &Request::Collect { doc, out })?;
            gongwen_common::sayln!(
                "{} of {} units answered; 汇总表.xlsx, 汇总表.csv and their files in {}",
                v["answered"],
                v["recipients"],
                v["out"].as_str().unwrap_or("?")
            );
        }
        Command::Reply {
            doc,
            files,
            decision,
            note,
            title,
            supersedes,
            cc,
            by,
            config,
        } => {
            let doc = DocId::parse(&doc)?;
            let files = absolute(&files)?;
            let supersedes = supersedes.map(|s| DocId::parse(&s)).transpose()?;
            let v = ask(
                &config,
                &Request::Reply(Box::new(gongwen_agent::actions::reply::ReplyRequest {
                    doc,
                    files,
                    decision,
                    note,
                    title,
                    supersedes,
                    cc,
                    by: by.clone(),
                })),
            )?;
            if v["signed_for_now"] == true {
                gongwen_common::sayln!(
                    "{doc} is signed for first (by {by}), as the answer is sealed"
                );
            }
            gongwen_common::sayln!(
                "answer {} queued for the unit that asked; `gongwen-agent status` follows it",
                v["doc_id"].as_str().unwrap_or("?")
            );
        }
        Command::Ack { doc, by, config } => {
            let doc = DocId::parse(&doc)?;
            ask(&config, &Request::Ack { doc, by })?;
            gongwen_common::sayln!("signed for {doc}; the receipt goes to the sender");
        }
        Command::Reject {
            doc,
            reason,
            config,
        } => {
            let doc = DocId::parse(&doc)?;
            ask(&config, &Request::Reject { doc, reason })?;
            gongwen_common::sayln!("returned {doc}; the sender will see the reason");
        }
        Command::Recall {
            doc,
            reason,
            config,
            json,
        } => {
            let doc = DocId::parse(&doc)?;
            let v = ask(&config, &Request::Recall { doc, reason })?;
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let list = |k: &str| {
                    v[k].as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "-".into())
                };
                gongwen_common::sayln!("recalled {doc}");
                gongwen_common::sayln!("  withdrawn before delivery: {}", list("withdrawn_at_hub"));
                gongwen_common::sayln!("  recalled from:             {}", list("recalled_from"));
                gongwen_common::sayln!(
                    "  already signed for/returned (they keep it): {}",
                    list("already_answered")
                );
            }
        }
        Command::Supervise { query } => {
            let (config, json, question) = match query {
                SuperviseQuery::Status { doc, config, json } => {
                    let doc = DocId::parse(&doc)?;
                    (
                        config,
                        json,
                        serde_json::json!({"query": "status", "doc": doc}),
                    )
                }
                SuperviseQuery::Overdue { config, json } => {
                    (config, json, serde_json::json!({"query": "overdue"}))
                }
                SuperviseQuery::Report {
                    since,
                    until,
                    config,
                    json,
                } => (
                    config,
                    json,
                    serde_json::json!({"query": "report", "since": since, "until": until}),
                ),
            };
            let kind = question["query"].as_str().unwrap_or("").to_owned();
            let v = ask(&config, &Request::Supervise { question })?;
            let text = match kind.as_str() {
                "overdue" => display::overdue(&v, json),
                "report" => display::report(&v, json),
                _ => display::doc_status(&v, json),
            };
            gongwen_common::say!("{text}");
        }
        Command::Evidence { doc, out, config } => {
            let doc = DocId::parse(&doc)?;
            std::fs::create_dir_all(&out)?;
            let out = std::fs::canonicalize(&out)?;
            ask(
                &config,
                &Request::Evidence {
                    doc,
                    out: out.clone(),
                },
            )?;
            gongwen_common::sayln!(
                "evidence written to {}; check it with: sh {}/verify.sh",
                out.display(),
                out.display()
            );
        }
        Command::Urge {
            doc,
            units,
            config,
            json,
        } => {
            let doc = DocId::parse(&doc)?;
            let units = units
                .iter()
                .map(|u| NodeId::parse(u))
                .collect::<Result<Vec<_>, _>>()?;
            let config = AgentConfig::load(&config)?;
            let socket = Folders::new(&config.root).control_socket();
            let runtime = tokio::runtime::Runtime::new()?;
            let v = runtime.block_on(control::query(&socket, &Request::Urge { doc, units }))?;
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let urged: Vec<String> = serde_json::from_value(v["urged"].clone())?;
                if urged.is_empty() {
                    gongwen_common::sayln!(
                        "nobody to urge: every unit has signed for, returned or been recalled from it"
                    );
                } else {
                    gongwen_common::sayln!("urged (催办): {}", urged.join(", "));
                }
            }
        }
        Command::RenderOfd {
            file,
            page,
            out,
            pages: _,
        } => match (page, out) {
            (Some(page), Some(out)) => {
                gongwen_agent::actions::render::render_ofd_page(&file, page, &out)
                    .map_err(anyhow::Error::msg)?
            }
            _ => {
                let n = gongwen_agent::actions::render::ofd_page_count(&file)
                    .map_err(anyhow::Error::msg)?;
                gongwen_common::sayln!("{n}");
            }
        },
        Command::RenderImage { file, out } => {
            gongwen_agent::actions::render::render_image(&file, &out).map_err(anyhow::Error::msg)?
        }
        Command::Seal {
            action:
                SealAction::Verify {
                    file,
                    roots,
                    crls,
                    config,
                    json,
                },
        } => {
            let mut seals = match &config {
                Some(c) => AgentConfig::load(c)?.seals,
                None => Default::default(),
            };
            seals.roots.extend(roots);
            seals.crls.extend(crls);
            let trust =
                gongwen_agent::actions::seals::trust_from(&seals).map_err(anyhow::Error::msg)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (finding, _) = gongwen_agent::actions::seals::examine(
                &file,
                &name,
                &trust,
                time::OffsetDateTime::now_utc(),
            );
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&finding)?);
            } else {
                for p in &finding.problems {
                    gongwen_common::sayln!("正文无法解析：{p}");
                }
                if finding.seals.is_empty() && finding.problems.is_empty() {
                    gongwen_common::sayln!("没有电子印章");
                }
                for s in &finding.seals {
                    gongwen_common::sayln!("{}", gongwen_agent::actions::seals::describe(s));
                }
            }
            if !finding.all_seals_valid() {
                std::process::exit(1);
            }
        }
        Command::User { action } => user_command(action)?,
        Command::Token { action } => token_command(action)?,
        Command::Keygen {
            id,
            out,
            suite,
            sm2_distid,
        } => {
            let id = NodeId::parse(&id)?;
            let files = keygen_with(&id, &out, suite, &sm2_distid)?;
            gongwen_common::sayln!("key:  {} (keep it here; mode 0600)", files.key.display());
            gongwen_common::sayln!("CSR:  {}", files.csr.display());
            // The binding the administrator signs is the suite's: the
            // X25519 one, or (GM) the SM2 one, which the CA requires.
            let binding = match &files.sm2 {
                None => {
                    gongwen_common::sayln!(
                        "document key: {} (keep it here; mode 0600; agent.toml: [tls] encryption_key)",
                        files.enc_key.display()
                    );
                    gongwen_common::sayln!("key binding: {}", files.binding.display());
                    format!("{id}.binding")
                }
                Some(sm2) => {
                    gongwen_common::sayln!(
                        "SM2 keys: {} and {} (keep them here; mode 0600)",
                        sm2.sign_key.display(),
                        sm2.enc_key.display()
                    );
                    gongwen_common::sayln!(
                        "SM2 key binding: {} (keep it beside the certificate)",
                        sm2.binding.display()
                    );
                    format!("{id}.sm2.binding")
                }
            };
            gongwen_common::sayln!(
                "send the CSR and the key binding to the administrator, who runs:\n  gongwen-certs --ca-dir DIR sign --csr {id}.csr --binding {binding} --role node --out {id}.crt"
            );
        }
    }
    Ok(())
}

fn print_status(docs: &[DocStatus]) {
    if docs.is_empty() {
        gongwen_common::sayln!("no documents sent yet");
    }
    for d in docs {
        gongwen_common::sayln!(
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
            gongwen_common::sayln!(
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

/// Queue a document and follow it until the hub accepts it.
async fn send(socket: &std::path::Path, req: SendRequest, no_wait: bool) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let v = control::query(socket, &Request::Send(Box::new(req))).await?;
    let doc = v["doc_id"]
        .as_str()
        .and_then(|s| DocId::parse(s).ok())
        .ok_or_else(|| anyhow::anyhow!("the agent gave no document id"))?;
    gongwen_common::sayln!("{doc}");
    if v["connected"] == false {
        eprintln!(
            "the agent is not connected to the hub right now (see its log for why); the document is queued and goes out when the link is back"
        );
        if !no_wait {
            eprintln!(
                "waiting for the hub to accept it; Ctrl-C stops waiting and leaves it queued"
            );
        }
    }
    if no_wait {
        eprintln!("queued; follow it with: gongwen-agent status {doc}");
        return Ok(());
    }
    let tty = std::io::stderr().is_terminal();
    let mut drew = false;
    loop {
        let v = control::query(socket, &Request::Status { doc: Some(doc) }).await?;
        let st: DocStatus = serde_json::from_value(v)?;
        match st.stage.as_str() {
            "sent" => {
                if drew {
                    eprintln!();
                }
                eprintln!(
                    "accepted by the hub at {}; follow delivery with: gongwen-agent status {doc}",
                    st.sent_at.unwrap_or_default()
                );
                return Ok(());
            }
            "failed" => {
                if drew {
                    eprintln!();
                }
                anyhow::bail!("not sent: {}", st.reason.unwrap_or_default());
            }
            _ => {
                if let Some((sent, total)) = st.progress
                    && tty
                    && total > 1 << 20
                {
                    let width = 30;
                    let done = (sent.min(total) * width / total.max(1)) as usize;
                    eprint!(
                        "\r[{}{}] {:>3}%  {:.1}/{:.1} MiB",
                        "#".repeat(done),
                        ".".repeat(width as usize - done),
                        sent * 100 / total.max(1),
                        sent as f64 / 1048576.0,
                        total as f64 / 1048576.0
                    );
                    let _ = std::io::stderr().flush();
                    drew = true;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// One question to the running agent named by `config`.
/// The agent runs elsewhere: give it absolute paths.
fn absolute(files: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    files
        .iter()
        .map(|f| std::fs::canonicalize(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display())))
        .collect()
}

fn ask(config: &std::path::Path, request: &Request) -> anyhow::Result<serde_json::Value> {
    let config = AgentConfig::load(config)?;
    let socket = Folders::new(&config.root).control_socket();
    let runtime = tokio::runtime::Runtime::new()?;
    Ok(runtime.block_on(control::query(&socket, request))?)
}

/// `gongwen-agent check`: every finding on its own line; whether all is well.
async fn check(path: &std::path::Path) -> bool {
    use gongwen_common::material::{self, Finding, Named};
    let config = match AgentConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            gongwen_common::sayln!("problem: {}", material::one_line(&e));
            return false;
        }
    };
    let named = Named {
        cert: &config.tls.cert,
        key: &config.tls.key,
        ca: &config.tls.ca,
        crl: None,
    };
    let sm2 = material::check_sm2(&config.path, &named, &config.tls.sm2);
    let (mut found, identity) = material::check_all(named, time::OffsetDateTime::now_utc());
    found.extend(sm2);
    if let Some(id) = &identity {
        if id.id != config.node_id {
            found.push(Finding::problem(
                "tls.cert",
                format!(
                    "{} is {}'s certificate, but node_id is {}",
                    config.tls.cert.display(),
                    id.id,
                    config.node_id
                ),
            ));
        }
        if id.role == gongwen_common::Role::Hub {
            found.push(Finding::problem(
                "tls.cert",
                format!(
                    "{} is the hub's certificate, not a unit's",
                    config.tls.cert.display()
                ),
            ));
        }
    }
    if let Err(e) = material::check_data_dir(&config.path, "root", &config.root) {
        found.push(Finding::problem("root", e.to_string()));
    }
    // 验章's trust: a root or CRL file that cannot be read would leave
    // every seal 无法验证 without anyone noticing.
    if let Err(e) = gongwen_agent::actions::seals::trust_from(&config.seals) {
        found.push(Finding::problem("seals", e));
    }
    if let Some(path) = &config.tls.encryption_key
        && let Err(e) = gongwen_agent::unit::folders::enrolled_encryption_key(path)
    {
        found.push(Finding::problem("tls.encryption_key", e.to_string()));
    }
    // The running agent knows best whether the hub admits it; a second
    // connection with the same certificate would replace its own.
    let socket = Folders::new(&config.root).control_socket();
    match control::query(&socket, &Request::Link).await {
        Ok(v) if v["connected"] == true => gongwen_common::sayln!(
            "ok: {}: the running agent is connected to the hub at {}",
            config.path.display(),
            v["hub"].as_str().unwrap_or("?")
        ),
        Ok(_) => found.push(Finding::problem(
            "hub",
            "the running agent is not connected to any hub now (gongwen-agent status, or its log, says why)",
        )),
        Err(_) if !found.iter().any(|f| f.severity == material::Severity::Problem) => {
            for hub in &config.hubs {
                match gongwen_agent::link::client::probe(&config, hub).await {
                    Ok(said) => gongwen_common::sayln!("ok: {}: hub {hub}: {said}", config.path.display()),
                    Err(why) => found.push(Finding::problem("hub", format!("{hub}: {why}"))),
                }
            }
        }
        Err(_) => {} // the material is wrong: a connection would say no more
    }
    material::report(&config.path, &found)
}

/// The accounts file of the agent `config` names.
fn accounts_file(config: &std::path::Path) -> anyhow::Result<PathBuf> {
    let config = AgentConfig::load(config)?;
    Ok(accounts::path_in(&Folders::new(&config.root).state))
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A password from standard input: on a terminal, asked twice without
/// echo; otherwise the first line.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let read_line = || -> anyhow::Result<String> {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    };
    if !stdin.is_terminal() {
        return read_line();
    }
    let echo = |on: bool| {
        let _ = std::process::Command::new("stty")
            .arg(if on { "echo" } else { "-echo" })
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    eprint!("password: ");
    echo(false);
    let first = read_line();
    eprint!("\nagain: ");
    let second = read_line();
    echo(true);
    eprintln!();
    let (first, second) = (first?, second?);
    anyhow::ensure!(
        first == second,
        "the two passwords differ; nothing was changed"
    );
    Ok(first)
}

fn user_command(action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::Add {
            name,
            display_name,
            role,
            config,
        } => {
            let path = accounts_file(&config)?;
            let role = accounts::UserRole::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role {role:?}: use clerk or admin"))?;
            let password = read_password()?;
            Accounts::edit(&path, |a| {
                a.add_user(&name, &display_name, role, &password, now_ms())
            })?;
            gongwen_common::sayln!("user {name} ({display_name}, {}) added", role.as_str());
        }
        UserAction::List { config, json } => {
            let accounts = Accounts::load(&accounts_file(&config)?)?;
            let rows: Vec<_> = accounts
                .users
                .iter()
                .map(|u| {
                    serde_json::json!({
                        "name": u.name,
                        "display_name": u.display_name,
                        "role": u.role.as_str(),
                        "created_at": gongwen_common::timefmt::rfc3339(
                            time::OffsetDateTime::from_unix_timestamp(u.created_ms / 1000)
                                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
                        ),
                    })
                })
                .collect();
            if json {
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                gongwen_common::sayln!("{:<24} {:<8} DISPLAY NAME", "NAME", "ROLE");
                for u in &accounts.users {
                    gongwen_common::sayln!(
                        "{:<24} {:<8} {}",
                        u.name,
                        u.role.as_str(),
                        u.display_name
                    );
                }
            }
        }
        UserAction::Passwd { name, config } => {
            let path = accounts_file(&config)?;
            if Accounts::load(&path)?.user(&name).is_none() {
                anyhow::bail!("there is no user named {name}");
            }
            let password = read_password()?;
            Accounts::edit(&path, |a| a.set_password(&name, &password))?;
            gongwen_common::sayln!("password of {name} changed");
        }
        UserAction::Remove { name, config } => {
            Accounts::edit(&accounts_file(&config)?, |a| a.remove_user(&name))?;
            gongwen_common::sayln!("user {name} removed, with their tokens");
        }
    }
    Ok(())
}

fn token_command(action: TokenAction) -> anyhow::Result<()> {
    match action {
        TokenAction::Create { user, config } => {
            let (id, token) = Accounts::edit(&accounts_file(&config)?, |a| {
                a.create_token(&user, now_ms())
            })?;
            gongwen_common::sayln!("token {id} for {user}; it is shown only now:");
            gongwen_common::sayln!("{token}");
        }
        TokenAction::List { config, json } => {
            let accounts = Accounts::load(&accounts_file(&config)?)?;
            if json {
                let rows: Vec<_> = accounts
                    .tokens
                    .iter()
                    .map(|t| serde_json::json!({"id": t.id, "user": t.user}))
                    .collect();
                gongwen_common::sayln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                gongwen_common::sayln!("{:<12} USER", "ID");
                for t in &accounts.tokens {
                    gongwen_common::sayln!("{:<12} {}", t.id, t.user);
                }
            }
        }
        TokenAction::Revoke { id, config } => {
            Accounts::edit(&accounts_file(&config)?, |a| a.revoke_token(&id))?;
            gongwen_common::sayln!("token {id} revoked");
        }
    }
    Ok(())
}
