//! The gongwen wire protocol: length-prefixed frames and the messages they
//! carry. Pure functions over bytes; the decoder never panics and never
//! allocates more than a frame's declared length, which is bounded.
//!
//! ```text
//! frame   = length:u32-be  type:u8  body          (length = 1 + body length)
//! ```
//!
//! Every exchange is one QUIC bidirectional stream, opened by whoever asks:
//!
//! ```text
//! agent → hub   Hello                          ← Welcome | (connection closed with a code)
//! agent → hub   PublishKey                     ← Ok | Error
//! agent → hub   Lookup                         ← Directory | Error
//! agent → hub   UploadBegin                    ← UploadFrom | Accepted | Error
//!               [raw content from offset, FIN] ← Accepted | Error
//! agent → hub   SubmitReceipt                  ← Ok | Error
//! hub → agent   DeliverBegin                   ← DeliverFrom | Delivered | Error
//!               [raw content from offset, FIN] ← Delivered | Error
//! hub → agent   ReceiptNotice | Notice | CrlUpdate  ← Ok | Error
//! hub → agent   CertificateRenewal (version 3 on)   ← Ok | Error
//! agent → hub   Recall                         ← Json | Error
//! agent → hub   Urge (the sender, its own)      ← Json | Error
//! agent → hub   Supervise (supervisors only)   ← Json | Error
//! ```
//!
//! Documents, receipts and key bindings travel as the signed statements of
//! [`crate::signed`]; the hub never needs to understand more of them than
//! their public header.

use crate::codec::{CodecError, Reader, Writer};
use crate::id::{DocId, NodeId};
use crate::pki::Role;

/// Version of the message vocabulary carried in `Hello`. 2: the welcome
/// carries the hub store's generation. 3: the hub may push a renewed
/// certificate (`CertificateRenewal`). 4: the welcome states the crypto
/// suite the hub serves. 5: a JSON answer larger than a frame comes in
/// parts (`JsonPart`… `Json`), and the 督办 notices of one escalation round
/// come together (`gongwen_common::notice::NoticeRound`). 6: a lookup's
/// answer larger than a frame comes in parts (`DirectoryPart`…
/// `Directory`). 7: a document for many units is sealed in the tree form
/// (`gongwen_common::envelope::tree`): its upload sends the keys' leaves
/// first (`KeyLeaves`…), and each recipient is delivered its own copy.
/// 8: federation — the welcome names the hub's domain, addresses may be
/// `unit@domain`, and the hub hands the agent the chains of statements and
/// CRLs of the other domains (`PeerOffer`).
pub const PROTOCOL_VERSION: u16 = 8;
/// The oldest version a hub still admits (agents are upgraded unit by
/// unit, after the hub).
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// Largest frame either side accepts (type byte + body).
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Largest signed statement (header, receipt, binding, CRL) in a frame.
pub const MAX_BLOB: usize = MAX_FRAME_LEN - 1024;
/// Most names or statements in one message.
pub const MAX_ITEMS: usize = 4096;
/// Largest frame the hub reads before it has welcomed a connection: a
/// hello is a version and a software name.
pub const MAX_HELLO_LEN: usize = 4 << 10;

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("frame of {len} bytes is larger than the {max}-byte limit")]
    Oversize { len: usize, max: usize },
    #[error("empty frame")]
    Empty,
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("invalid message: {0}")]
    Codec(#[from] CodecError),
}

/// Why the hub closed an agent's connection (QUIC application close code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum RefuseCode {
    /// The agent speaks a protocol version the hub does not.
    UnsupportedVersion = 1,
    /// The certificate's role may not connect as an agent.
    RoleNotAllowed = 2,
    /// The certificate was revoked while connected.
    Revoked = 3,
    /// A newer connection of the same node replaced this one.
    Replaced = 4,
    /// The hub's revocation list is stale; it refuses everyone until renewed.
    CrlStale = 5,
    /// The hub is shutting down.
    ShuttingDown = 6,
    /// The peer broke the protocol.
    ProtocolViolation = 7,
    /// The certificate has expired (or is not valid yet) by the hub's clock.
    Expired = 8,
    /// The hub holds as many connections as it takes; try again later.
    Busy = 9,
    /// Anything else, explained in the message.
    Other = 99,
}

impl RefuseCode {
    pub fn from_u16(v: u16) -> RefuseCode {
        match v {
            1 => RefuseCode::UnsupportedVersion,
            2 => RefuseCode::RoleNotAllowed,
            3 => RefuseCode::Revoked,
            4 => RefuseCode::Replaced,
            5 => RefuseCode::CrlStale,
            6 => RefuseCode::ShuttingDown,
            7 => RefuseCode::ProtocolViolation,
            8 => RefuseCode::Expired,
            9 => RefuseCode::Busy,
            _ => RefuseCode::Other,
        }
    }
}

/// Why a request failed; carried in [`Message::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A recipient or group the hub does not know.
    UnknownRecipient = 10,
    /// The document names a sender other than the connection's node.
    NotTheSender = 11,
    /// A signature does not verify, or the signer's certificate is not valid.
    BadSignature = 12,
    /// The same document id was already used for different content.
    Conflict = 13,
    /// Larger than the receiver accepts.
    TooLarge = 14,
    /// The content does not match its signed length or digest.
    ContentMismatch = 15,
    /// A statement could not be parsed, or is not what this request takes.
    Malformed = 16,
    /// A receipt for a document the hub never accepted.
    UnknownDocument = 17,
    /// The receiver cannot store it now (disk full, I/O error): retry later.
    Storage = 20,
    /// The peer asked something this node does not do.
    BadRequest = 21,
    /// The document failed the recipient's checks and was quarantined.
    Quarantined = 22,
    /// It cannot be judged now (a signer's revocation status is unknown
    /// while the revocation list is stale): retry later.
    NotNow = 23,
    /// A recipient is offline and the sender already has as many documents
    /// waiting for it as the hub takes: retry later (this document only).
    QueueFull = 24,
    /// Anything else.
    Internal = 99,
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> ErrorCode {
        match v {
            10 => ErrorCode::UnknownRecipient,
            11 => ErrorCode::NotTheSender,
            12 => ErrorCode::BadSignature,
            13 => ErrorCode::Conflict,
            14 => ErrorCode::TooLarge,
            15 => ErrorCode::ContentMismatch,
            16 => ErrorCode::Malformed,
            17 => ErrorCode::UnknownDocument,
            20 => ErrorCode::Storage,
            21 => ErrorCode::BadRequest,
            22 => ErrorCode::Quarantined,
            23 => ErrorCode::NotNow,
            24 => ErrorCode::QueueFull,
            _ => ErrorCode::Internal,
        }
    }

    /// What a refusal with this code means, in the words a clerk reads.
    pub fn chinese(self) -> &'static str {
        match self {
            ErrorCode::UnknownRecipient => "交换中心不认识其中的收文单位",
            ErrorCode::NotTheSender => "公文上的发文单位不是本单位",
            ErrorCode::BadSignature => "签名无法验证，或签名证书无效",
            ErrorCode::Conflict => "同一编号已用于另一份公文",
            ErrorCode::TooLarge => "公文超过交换中心允许的大小",
            ErrorCode::ContentMismatch => "内容与签名不符（传输中损坏）",
            ErrorCode::Malformed => "公文格式不对",
            ErrorCode::UnknownDocument => "交换中心没有这份公文",
            ErrorCode::Storage => "交换中心暂时无法保存（磁盘或数据库故障）",
            ErrorCode::BadRequest => "交换中心不接受这个请求（版本可能不一致）",
            ErrorCode::Quarantined => "公文未通过收文单位的检查，已被隔离",
            ErrorCode::NotNow => "交换中心暂时无法判断证书是否吊销",
            ErrorCode::QueueFull => "收文单位离线，待收公文已满",
            ErrorCode::Internal => "交换中心内部错误",
        }
    }

    /// Whether trying the same request again later can succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Storage | ErrorCode::Internal | ErrorCode::NotNow | ErrorCode::QueueFull
        )
    }
}

/// What a [`Message::PeerOffer`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerOfferKind {
    /// The offering hub's CA's federation statement for the domain (the
    /// receiver takes it for a domain it routes through that hub).
    Statement,
    /// The domain's CRL, signed by its CA.
    Crl,
    /// The domain's unit directory, signed by its CA.
    Directory,
}

impl PeerOfferKind {
    fn code(self) -> u8 {
        match self {
            PeerOfferKind::Statement => 1,
            PeerOfferKind::Crl => 2,
            PeerOfferKind::Directory => 3,
        }
    }
    fn from_code(c: u8) -> Result<Self, CodecError> {
        match c {
            1 => Ok(PeerOfferKind::Statement),
            2 => Ok(PeerOfferKind::Crl),
            3 => Ok(PeerOfferKind::Directory),
            other => Err(CodecError::BadCode {
                what: "peer offer kind",
                code: other.into(),
            }),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PeerOfferKind::Statement => "federation statement",
            PeerOfferKind::Crl => "revocation list",
            PeerOfferKind::Directory => "unit directory",
        }
    }
}

/// One name the sender asked about, as the hub resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The name as asked: a node id or a group name.
    pub name: String,
    /// The node ids it stands for (itself, for a node).
    pub members: Vec<NodeId>,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Agent → hub, first frame of the first stream.
    Hello { version: u16, software: String },
    /// Hub → peer hub (ALPN `gongwen-fed/1`), first frame of the first
    /// stream: the domain it speaks for, its suite, and its current CRL
    /// (the peer judges its certificate against it).
    PeerHello {
        version: u16,
        domain: String,
        suite: String,
        crl: Vec<u8>,
    },
    /// Peer hub → hub: admitted; the accepting hub's domain, suite and CRL.
    PeerWelcome {
        domain: String,
        suite: String,
        crl: Vec<u8>,
    },
    /// Hub → peer hub: what it knows of `domain` (a [`PeerOfferKind`]),
    /// `len` raw bytes after this frame on the same stream: a CA-signed
    /// statement, CRL or unit directory, passed on verbatim.
    PeerOffer {
        kind: PeerOfferKind,
        domain: String,
        len: u64,
    },
    /// Hub → agent: admitted, as the node the certificate names.
    Welcome {
        node: NodeId,
        role: Role,
        hub: NodeId,
        /// The hub's clock, milliseconds since the Unix epoch.
        hub_time_ms: i64,
        /// The generation of the hub's store: a new one means the hub lost
        /// (or was rebuilt without) what it held, and the agent offers its
        /// documents and receipts again. Sent to agents of version 2 on.
        generation: Option<String>,
        /// The crypto suite the hub serves (`standard`, `gm`). Sent to
        /// agents of version 4 on, after the generation.
        suite: Option<String>,
        /// The hub's federation domain, when it is federated. Sent to
        /// agents of version 8 on, after the suite: a unit named
        /// `unit@domain` by a sender elsewhere knows it is meant.
        domain: Option<String>,
    },
    /// Agent → hub: this node's signed encryption-key binding.
    PublishKey { binding: Vec<u8> },
    /// Agent → hub: resolve recipient names and fetch their key bindings.
    Lookup { names: Vec<String> },
    /// Hub → agent: the answer to `Lookup`.
    Directory {
        resolved: Vec<Resolved>,
        unknown: Vec<String>,
        /// Signed key bindings of every resolved member that has one.
        bindings: Vec<Vec<u8>>,
    },
    /// Hub → agent: a piece of a `Directory` answer too large for one
    /// frame; the pieces that follow end with a `Directory` (to agents of
    /// version 6 on). A group's members may go on from one piece to the
    /// next: the reader joins resolved names that repeat.
    DirectoryPart {
        resolved: Vec<Resolved>,
        unknown: Vec<String>,
        bindings: Vec<Vec<u8>>,
    },
    /// Agent → hub: upload a sealed document (header now, content after).
    UploadBegin {
        doc_id: DocId,
        header: Vec<u8>,
        content_len: u64,
    },
    /// Hub → agent: send the content from this offset on.
    UploadFrom { offset: u64 },
    /// Agent → hub, before an `UploadBegin` on the same stream: leaves of
    /// a tree-form header's key tree, in order (as many messages as they
    /// need; version 7 on).
    KeyLeaves { doc_id: DocId, leaves: Vec<Vec<u8>> },
    /// Hub → agent: the document is durable at the hub; its signed receipt.
    Accepted { receipt: Vec<u8> },
    /// Agent → hub: a receipt this node issued (delivered, quarantined …).
    SubmitReceipt { receipt: Vec<u8> },
    /// Hub → agent: a document for this node (header now, content after).
    DeliverBegin {
        doc_id: DocId,
        header: Vec<u8>,
        content_len: u64,
        /// This recipient's acknowledgment deadline by the hub's clock
        /// (Unix ms): the one urging and escalation follow.
        deadline_ms: i64,
    },
    /// Agent → hub: send the content from this offset on.
    DeliverFrom { offset: u64 },
    /// Agent → hub: the outcome of a delivery, as a signed receipt.
    Delivered { receipt: Vec<u8> },
    /// Hub → agent: a receipt for a document this node sent.
    ReceiptNotice { receipt: Vec<u8> },
    /// Hub → agent: the current certificate revocation list (DER).
    CrlUpdate { crl: Vec<u8> },
    /// Hub → agent: the unit's key certified anew (DER), to use from the
    /// next connection. Sent to agents of version 3 on.
    CertificateRenewal { cert: Vec<u8> },
    /// Hub → agent: a notice (urge, supervise, recall), JSON.
    Notice { body: Vec<u8> },
    /// Agent → hub: the sender withdraws a document.
    Recall { doc_id: DocId, reason: String },
    /// Agent → hub: the sender urges (催办) the units that have not yet
    /// signed for its document (all of them when `units` is empty).
    Urge { doc_id: DocId, units: Vec<NodeId> },
    /// Agent (supervisor) → hub: a supervision query, JSON.
    Supervise { query: Vec<u8> },
    /// An answer carried as JSON (recall outcome, supervision data).
    Json { body: Vec<u8> },
    /// A piece of a JSON answer too large for one frame; the pieces that
    /// follow end with a `Json` (to agents of version 5 on).
    JsonPart { body: Vec<u8> },
    /// The request succeeded and needs no other answer.
    Ok,
    /// The request failed.
    Error { code: ErrorCode, message: String },
}

impl Message {
    /// The message's name, for logs and refusals: what a peer sent is
    /// described by its kind and length, never echoed.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Welcome { .. } => "Welcome",
            Message::PeerHello { .. } => "PeerHello",
            Message::PeerWelcome { .. } => "PeerWelcome",
            Message::PeerOffer { .. } => "PeerOffer",
            Message::PublishKey { .. } => "PublishKey",
            Message::Lookup { .. } => "Lookup",
            Message::Directory { .. } => "Directory",
            Message::DirectoryPart { .. } => "DirectoryPart",
            Message::UploadBegin { .. } => "UploadBegin",
            Message::UploadFrom { .. } => "UploadFrom",
            Message::KeyLeaves { .. } => "KeyLeaves",
            Message::Accepted { .. } => "Accepted",
            Message::SubmitReceipt { .. } => "SubmitReceipt",
            Message::DeliverBegin { .. } => "DeliverBegin",
            Message::DeliverFrom { .. } => "DeliverFrom",
            Message::Delivered { .. } => "Delivered",
            Message::ReceiptNotice { .. } => "ReceiptNotice",
            Message::CrlUpdate { .. } => "CrlUpdate",
            Message::CertificateRenewal { .. } => "CertificateRenewal",
            Message::Notice { .. } => "Notice",
            Message::Recall { .. } => "Recall",
            Message::Urge { .. } => "Urge",
            Message::Supervise { .. } => "Supervise",
            Message::Json { .. } => "Json",
            Message::JsonPart { .. } => "JsonPart",
            Message::Ok => "Ok",
            Message::Error { .. } => "Error",
        }
    }

    /// "a Lookup message of 1048576 bytes": what a log line or a refusal
    /// may say about a message a peer sent.
    pub fn describe(&self) -> String {
        format!("a {} message of {} bytes", self.kind(), encoded_len(self))
    }
}

/// The `KeyLeaves` messages that carry `leaves` (each within a frame and
/// its item count), in order.
pub fn key_leaves_messages(doc_id: DocId, leaves: &[Vec<u8>]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut part: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    for l in leaves {
        if part.len() + 1 >= MAX_ITEMS || bytes + l.len() + 4 > MAX_FRAME_LEN / 2 {
            out.push(Message::KeyLeaves {
                doc_id,
                leaves: std::mem::take(&mut part),
            });
            bytes = 0;
        }
        bytes += l.len() + 4;
        part.push(l.clone());
    }
    if !part.is_empty() {
        out.push(Message::KeyLeaves {
            doc_id,
            leaves: part,
        });
    }
    out
}

/// Bytes of `msg`'s frame, prefix included.
pub fn encoded_len(msg: &Message) -> usize {
    to_frame(msg).len()
}

const T_HELLO: u8 = 0x01;
const T_WELCOME: u8 = 0x02;
const T_PEER_HELLO: u8 = 0x03;
const T_PEER_WELCOME: u8 = 0x04;
const T_PEER_OFFER: u8 = 0x05;
const T_PUBLISH_KEY: u8 = 0x10;
const T_LOOKUP: u8 = 0x12;
const T_DIRECTORY: u8 = 0x13;
const T_DIRECTORY_PART: u8 = 0x14;
const T_UPLOAD_BEGIN: u8 = 0x20;
const T_UPLOAD_FROM: u8 = 0x21;
const T_KEY_LEAVES: u8 = 0x23;
/// Largest leaf of a key tree in a `KeyLeaves`.
pub const MAX_KEY_LEAF: usize = 1024;
const T_ACCEPTED: u8 = 0x22;
const T_SUBMIT_RECEIPT: u8 = 0x30;
const T_DELIVER_BEGIN: u8 = 0x40;
const T_DELIVER_FROM: u8 = 0x41;
const T_DELIVERED: u8 = 0x42;
const T_RECEIPT_NOTICE: u8 = 0x50;
const T_CRL_UPDATE: u8 = 0x51;
const T_NOTICE: u8 = 0x52;
const T_RECALL: u8 = 0x53;
const T_SUPERVISE: u8 = 0x54;
const T_JSON: u8 = 0x55;
const T_URGE: u8 = 0x56;
const T_CERTIFICATE_RENEWAL: u8 = 0x57;
const T_JSON_PART: u8 = 0x58;
const T_OK: u8 = 0x60;
const T_ERROR: u8 = 0x7f;

fn role_code(r: Role) -> u8 {
    match r {
        Role::Hub => 1,
        Role::Node => 2,
        Role::Supervisor => 3,
    }
}

fn role_from(c: u8) -> Result<Role, CodecError> {
    match c {
        1 => Ok(Role::Hub),
        2 => Ok(Role::Node),
        3 => Ok(Role::Supervisor),
        other => Err(CodecError::BadCode {
            what: "role",
            code: other.into(),
        }),
    }
}

fn strings(w: &mut Writer<'_>, items: &[String]) {
    w.u16(items.len().min(MAX_ITEMS) as u16);
    for s in items.iter().take(MAX_ITEMS) {
        w.str(s);
    }
}

/// A list's count, at most [`MAX_ITEMS`].
fn item_count(r: &mut Reader<'_>) -> Result<usize, CodecError> {
    let n = r.u16()? as usize;
    if n > MAX_ITEMS {
        return Err(CodecError::TooLong {
            len: n,
            max: MAX_ITEMS,
        });
    }
    Ok(n)
}

fn read_strings(r: &mut Reader<'_>) -> Result<Vec<String>, CodecError> {
    (0..item_count(r)?).map(|_| r.string()).collect()
}

/// A list of byte strings of at most `max` bytes each.
fn read_blobs(r: &mut Reader<'_>, max: usize) -> Result<Vec<Vec<u8>>, CodecError> {
    (0..item_count(r)?)
        .map(|_| r.bytes(max).map(<[u8]>::to_vec))
        .collect()
}

/// Append the frame for `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    let mut w = Writer(out);
    match msg {
        Message::Hello { version, software } => {
            w.u8(T_HELLO);
            w.u16(*version);
            w.str(software);
        }
        Message::Welcome {
            node,
            role,
            hub,
            hub_time_ms,
            generation,
            suite,
            domain,
        } => {
            w.u8(T_WELCOME);
            w.str(node.as_str());
            w.u8(role_code(*role));
            w.str(hub.as_str());
            w.i64(*hub_time_ms);
            if let Some(g) = generation {
                w.str(g);
                // Only after a generation: each optional field follows the
                // one before it.
                if let Some(s) = suite {
                    w.str(s);
                    if let Some(d) = domain {
                        w.str(d);
                    }
                }
            }
        }
        Message::PeerHello {
            version,
            domain,
            suite,
            crl,
        } => {
            w.u8(T_PEER_HELLO);
            w.u16(*version);
            w.str(domain);
            w.str(suite);
            w.bytes(crl);
        }
        Message::PeerWelcome { domain, suite, crl } => {
            w.u8(T_PEER_WELCOME);
            w.str(domain);
            w.str(suite);
            w.bytes(crl);
        }
        Message::PeerOffer { kind, domain, len } => {
            w.u8(T_PEER_OFFER);
            w.u8(kind.code());
            w.str(domain);
            w.u64(*len);
        }
        Message::PublishKey { binding } => {
            w.u8(T_PUBLISH_KEY);
            w.bytes(binding);
        }
        Message::Lookup { names } => {
            w.u8(T_LOOKUP);
            strings(&mut w, names);
        }
        Message::Directory {
            resolved,
            unknown,
            bindings,
        }
        | Message::DirectoryPart {
            resolved,
            unknown,
            bindings,
        } => {
            w.u8(if matches!(msg, Message::Directory { .. }) {
                T_DIRECTORY
            } else {
                T_DIRECTORY_PART
            });
            w.u16(resolved.len().min(MAX_ITEMS) as u16);
            for r in resolved.iter().take(MAX_ITEMS) {
                w.str(&r.name);
                w.node_ids(&r.members);
            }
            strings(&mut w, unknown);
            w.u16(bindings.len().min(MAX_ITEMS) as u16);
            for b in bindings.iter().take(MAX_ITEMS) {
                w.bytes(b);
            }
        }
        Message::UploadBegin {
            doc_id,
            header,
            content_len,
        } => {
            w.u8(T_UPLOAD_BEGIN);
            w.raw(doc_id.as_bytes());
            w.bytes(header);
            w.u64(*content_len);
        }
        Message::DeliverBegin {
            doc_id,
            header,
            content_len,
            deadline_ms,
        } => {
            w.u8(T_DELIVER_BEGIN);
            w.raw(doc_id.as_bytes());
            w.bytes(header);
            w.u64(*content_len);
            w.i64(*deadline_ms);
        }
        Message::KeyLeaves { doc_id, leaves } => {
            w.u8(T_KEY_LEAVES);
            w.raw(doc_id.as_bytes());
            w.u16(leaves.len().min(MAX_ITEMS) as u16);
            for l in leaves.iter().take(MAX_ITEMS) {
                w.bytes(l);
            }
        }
        Message::UploadFrom { offset } => {
            w.u8(T_UPLOAD_FROM);
            w.u64(*offset);
        }
        Message::DeliverFrom { offset } => {
            w.u8(T_DELIVER_FROM);
            w.u64(*offset);
        }
        Message::Accepted { receipt } => {
            w.u8(T_ACCEPTED);
            w.bytes(receipt);
        }
        Message::SubmitReceipt { receipt } => {
            w.u8(T_SUBMIT_RECEIPT);
            w.bytes(receipt);
        }
        Message::Delivered { receipt } => {
            w.u8(T_DELIVERED);
            w.bytes(receipt);
        }
        Message::ReceiptNotice { receipt } => {
            w.u8(T_RECEIPT_NOTICE);
            w.bytes(receipt);
        }
        Message::CrlUpdate { crl } => {
            w.u8(T_CRL_UPDATE);
            w.bytes(crl);
        }
        Message::CertificateRenewal { cert } => {
            w.u8(T_CERTIFICATE_RENEWAL);
            w.bytes(cert);
        }
        Message::Notice { body } => {
            w.u8(T_NOTICE);
            w.bytes(body);
        }
        Message::Recall { doc_id, reason } => {
            w.u8(T_RECALL);
            w.raw(doc_id.as_bytes());
            w.str(reason);
        }
        Message::Urge { doc_id, units } => {
            w.u8(T_URGE);
            w.raw(doc_id.as_bytes());
            w.node_ids(units);
        }
        Message::Supervise { query } => {
            w.u8(T_SUPERVISE);
            w.bytes(query);
        }
        Message::JsonPart { body } => {
            w.u8(T_JSON_PART);
            w.bytes(body);
        }
        Message::Json { body } => {
            w.u8(T_JSON);
            w.bytes(body);
        }
        Message::Ok => w.u8(T_OK),
        Message::Error { code, message } => {
            w.u8(T_ERROR);
            w.u16(*code as u16);
            w.str(message);
        }
    }
    let len = out.len() - start - LEN_PREFIX;
    // Messages we build are far below 4 GiB; saturate rather than wrap if not.
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    out[start..start + LEN_PREFIX].copy_from_slice(&len32.to_be_bytes());
}

/// Encode one message into a fresh buffer.
pub fn to_frame(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out);
    out
}

/// Read the length prefix of a frame: `Ok(None)` until 4 bytes are there.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    frame_len_within(buf, MAX_FRAME_LEN)
}

/// [`frame_len`] with a smaller bound than [`MAX_FRAME_LEN`] (a hello).
pub fn frame_len_within(buf: &[u8], max: usize) -> Result<Option<usize>, WireError> {
    let max = max.min(MAX_FRAME_LEN);
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Ok(None);
    };
    let mut b = [0u8; LEN_PREFIX];
    b.copy_from_slice(prefix);
    let len = u32::from_be_bytes(b) as usize;
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > max {
        return Err(WireError::Oversize { len, max });
    }
    Ok(Some(len))
}

/// Decode one frame from the front of `buf`.
///
/// `Ok(None)`: more bytes are needed. `Ok(Some((msg, used)))`: a message and
/// the number of bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let Some(len) = frame_len(buf)? else {
        return Ok(None);
    };
    let Some(frame) = buf.get(LEN_PREFIX..LEN_PREFIX + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(frame)?, LEN_PREFIX + len)))
}

/// Decode the part of a frame after its length prefix.
pub fn decode_body(frame: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader::new(frame);
    let blob = |r: &mut Reader<'_>| r.bytes(MAX_BLOB).map(<[u8]>::to_vec);
    let msg = match r.u8()? {
        T_HELLO => Message::Hello {
            version: r.u16()?,
            software: r.string()?,
        },
        T_WELCOME => Message::Welcome {
            node: r.node_id()?,
            role: role_from(r.u8()?)?,
            hub: r.node_id()?,
            hub_time_ms: r.i64()?,
            // A hub of version 1 sends none.
            generation: if r.remaining() > 0 {
                Some(r.string()?)
            } else {
                None
            },
            // Nor does a hub (or an agent's hello) before version 4.
            suite: if r.remaining() > 0 {
                Some(r.string()?)
            } else {
                None
            },
            // Nor before version 8, nor a hub that is not federated.
            domain: if r.remaining() > 0 {
                Some(r.string()?)
            } else {
                None
            },
        },
        T_PEER_HELLO => Message::PeerHello {
            version: r.u16()?,
            domain: r.string()?,
            suite: r.string()?,
            crl: blob(&mut r)?,
        },
        T_PEER_WELCOME => Message::PeerWelcome {
            domain: r.string()?,
            suite: r.string()?,
            crl: blob(&mut r)?,
        },
        T_PEER_OFFER => Message::PeerOffer {
            kind: PeerOfferKind::from_code(r.u8()?)?,
            domain: r.string()?,
            len: r.u64()?,
        },
        T_PUBLISH_KEY => Message::PublishKey {
            binding: blob(&mut r)?,
        },
        T_LOOKUP => Message::Lookup {
            names: read_strings(&mut r)?,
        },
        t @ (T_DIRECTORY | T_DIRECTORY_PART) => {
            let resolved = (0..item_count(&mut r)?)
                .map(|_| {
                    Ok(Resolved {
                        name: r.string()?,
                        members: r.node_ids(MAX_ITEMS)?,
                    })
                })
                .collect::<Result<Vec<_>, CodecError>>()?;
            let unknown = read_strings(&mut r)?;
            let bindings = read_blobs(&mut r, MAX_BLOB)?;
            if t == T_DIRECTORY {
                Message::Directory {
                    resolved,
                    unknown,
                    bindings,
                }
            } else {
                Message::DirectoryPart {
                    resolved,
                    unknown,
                    bindings,
                }
            }
        }
        t @ (T_UPLOAD_BEGIN | T_DELIVER_BEGIN) => {
            let doc_id = DocId::from_bytes(r.array()?);
            let header = blob(&mut r)?;
            let content_len = r.u64()?;
            if t == T_UPLOAD_BEGIN {
                Message::UploadBegin {
                    doc_id,
                    header,
                    content_len,
                }
            } else {
                Message::DeliverBegin {
                    doc_id,
                    header,
                    content_len,
                    deadline_ms: r.i64()?,
                }
            }
        }
        T_UPLOAD_FROM => Message::UploadFrom { offset: r.u64()? },
        T_KEY_LEAVES => {
            let doc_id = DocId::from_bytes(r.array()?);
            let leaves = read_blobs(&mut r, MAX_KEY_LEAF)?;
            Message::KeyLeaves { doc_id, leaves }
        }
        T_DELIVER_FROM => Message::DeliverFrom { offset: r.u64()? },
        T_ACCEPTED => Message::Accepted {
            receipt: blob(&mut r)?,
        },
        T_SUBMIT_RECEIPT => Message::SubmitReceipt {
            receipt: blob(&mut r)?,
        },
        T_DELIVERED => Message::Delivered {
            receipt: blob(&mut r)?,
        },
        T_RECEIPT_NOTICE => Message::ReceiptNotice {
            receipt: blob(&mut r)?,
        },
        T_CRL_UPDATE => Message::CrlUpdate { crl: blob(&mut r)? },
        T_CERTIFICATE_RENEWAL => Message::CertificateRenewal {
            cert: blob(&mut r)?,
        },
        T_NOTICE => Message::Notice {
            body: blob(&mut r)?,
        },
        T_RECALL => Message::Recall {
            doc_id: DocId::from_bytes(r.array()?),
            reason: r.string()?,
        },
        T_URGE => Message::Urge {
            doc_id: DocId::from_bytes(r.array()?),
            units: r.node_ids(MAX_ITEMS)?,
        },
        T_SUPERVISE => Message::Supervise {
            query: blob(&mut r)?,
        },
        T_JSON => Message::Json {
            body: blob(&mut r)?,
        },
        T_JSON_PART => Message::JsonPart {
            body: blob(&mut r)?,
        },
        T_OK => Message::Ok,
        T_ERROR => Message::Error {
            code: ErrorCode::from_u16(r.u16()?),
            message: r.string()?,
        },
        other => return Err(WireError::UnknownType(other)),
    };
    r.finish()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn samples() -> Vec<Message> {
        let doc_id = DocId::from_parts(1_700_000_000_000, [7; 10]);
        vec![
            Message::Hello {
                version: PROTOCOL_VERSION,
                software: "gongwen-agent 0.1.0".into(),
            },
            Message::PeerHello {
                version: crate::federation::FEDERATION_VERSION,
                domain: "heilongjiang".into(),
                suite: "standard".into(),
                crl: vec![0x30, 0x82, 1, 2],
            },
            Message::PeerWelcome {
                domain: "national".into(),
                suite: "gm".into(),
                crl: vec![0x30],
            },
            Message::PeerOffer {
                kind: PeerOfferKind::Directory,
                domain: "jilin".into(),
                len: 15_000_000,
            },
            Message::Welcome {
                node: id("harbin-gov"),
                role: Role::Supervisor,
                hub: id("hub"),
                hub_time_ms: 1_795_000_000_123,
                generation: Some("5f0c2a1e9b7d4c3a8e6f1b2d3c4a5e6f".into()),
                suite: None,
                domain: None,
            },
            Message::Welcome {
                node: id("harbin-gov"),
                role: Role::Node,
                hub: id("hub"),
                hub_time_ms: 1_795_000_000_123,
                generation: Some("5f0c2a1e9b7d4c3a8e6f1b2d3c4a5e6f".into()),
                suite: Some("gm".into()),
                domain: None,
            },
            Message::Welcome {
                node: id("harbin-gov"),
                role: Role::Node,
                hub: id("hub"),
                hub_time_ms: 1_795_000_000_123,
                generation: Some("5f0c2a1e9b7d4c3a8e6f1b2d3c4a5e6f".into()),
                suite: Some("standard".into()),
                domain: Some("heilongjiang".into()),
            },
            Message::Welcome {
                node: id("harbin-gov"),
                role: Role::Node,
                hub: id("hub"),
                hub_time_ms: 1_795_000_000_123,
                generation: None,
                suite: None,
                domain: None,
            },
            Message::PublishKey {
                binding: vec![1, 2, 3],
            },
            Message::Lookup {
                names: vec!["cities".into(), "prov-gov".into()],
            },
            Message::Directory {
                resolved: vec![Resolved {
                    name: "cities".into(),
                    members: vec![id("harbin-gov"), id("daqing-gov")],
                }],
                unknown: vec!["nowhere".into()],
                bindings: vec![vec![9; 100], vec![]],
            },
            Message::DirectoryPart {
                resolved: vec![Resolved {
                    name: "counties".into(),
                    members: vec![id("hulan-gov")],
                }],
                unknown: vec![],
                bindings: vec![vec![8; 50]],
            },
            Message::UploadBegin {
                doc_id,
                header: vec![5; 300],
                content_len: 1 << 33,
            },
            Message::UploadFrom { offset: 12345 },
            Message::KeyLeaves {
                doc_id,
                leaves: vec![vec![0, 1, 2], vec![7; 120]],
            },
            Message::Accepted {
                receipt: vec![4; 20],
            },
            Message::SubmitReceipt {
                receipt: vec![3; 20],
            },
            Message::DeliverBegin {
                doc_id,
                header: vec![6; 30],
                content_len: 16,
                deadline_ms: 1_700_000_000_000,
            },
            Message::DeliverFrom { offset: 0 },
            Message::Delivered {
                receipt: vec![2; 9],
            },
            Message::ReceiptNotice {
                receipt: vec![1; 9],
            },
            Message::CrlUpdate { crl: vec![0; 400] },
            Message::CertificateRenewal {
                cert: vec![0x30; 600],
            },
            Message::Notice {
                body: b"{}".to_vec(),
            },
            Message::Recall {
                doc_id,
                reason: "文号有误".into(),
            },
            Message::Urge {
                doc_id,
                units: vec![NodeId::parse("harbin-gov").unwrap()],
            },
            Message::Supervise {
                query: b"{}".to_vec(),
            },
            Message::Json {
                body: b"[]".to_vec(),
            },
            Message::JsonPart {
                body: b"[1,".to_vec(),
            },
            Message::Ok,
            Message::Error {
                code: ErrorCode::UnknownRecipient,
                message: "收件单位不存在: nowhere".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            let f = to_frame(&m);
            assert_eq!(decode(&f).unwrap(), Some((m, f.len())));
        }
    }

    #[test]
    fn partial_frames_ask_for_more() {
        for m in samples() {
            let f = to_frame(&m);
            for cut in 0..f.len() {
                assert_eq!(decode(&f[..cut]).unwrap(), None, "cut at {cut}");
            }
        }
    }

    #[test]
    fn oversize_length_is_refused_before_the_body_arrives() {
        let mut f = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
        f.push(T_HELLO);
        assert_eq!(
            decode(&f),
            Err(WireError::Oversize {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn a_frame_cut_inside_a_field_is_truncated_not_a_panic() {
        let f = to_frame(&samples()[1]);
        let body = &f[LEN_PREFIX..f.len() - 3];
        assert_eq!(
            decode_body(body),
            Err(WireError::Codec(CodecError::Truncated))
        );
    }

    #[test]
    fn trailing_bytes_and_unknown_types_are_refused() {
        let mut body = to_frame(&samples()[0])[LEN_PREFIX..].to_vec();
        body.push(0);
        assert_eq!(
            decode_body(&body),
            Err(WireError::Codec(CodecError::TrailingBytes(1)))
        );
        assert_eq!(decode_body(&[0x7e]), Err(WireError::UnknownType(0x7e)));
        assert_eq!(decode(&[0, 0, 0, 0]), Err(WireError::Empty));
    }

    #[test]
    fn invalid_node_id_and_role_are_refused() {
        let mut body = vec![T_WELCOME];
        body.extend_from_slice(&3u16.to_be_bytes());
        body.extend_from_slice(b"../");
        assert!(matches!(
            decode_body(&body),
            Err(WireError::Codec(CodecError::BadNodeId(_)))
        ));
        let mut body = vec![T_WELCOME, 0, 2, b'a', b'b', 9];
        body.extend_from_slice(&[0, 2, b'h', b'b']);
        body.extend_from_slice(&0i64.to_be_bytes());
        assert!(matches!(
            decode_body(&body),
            Err(WireError::Codec(CodecError::BadCode { what: "role", .. }))
        ));
    }

    #[test]
    fn a_blob_longer_than_the_frame_is_refused_without_allocating() {
        let mut body = vec![T_PUBLISH_KEY];
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_body(&body),
            Err(WireError::Codec(CodecError::TooLong { .. }))
        ));
    }

    #[test]
    fn decoder_survives_every_single_byte_corruption() {
        // A cheap stand-in for the fuzzer: no input may panic.
        for m in samples() {
            let f = to_frame(&m);
            for i in 0..f.len().min(64) {
                for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                    let mut g = f.clone();
                    g[i] = v;
                    let _ = decode(&g);
                }
            }
        }
    }

    #[test]
    fn overlong_text_is_cut_at_a_character_boundary() {
        let m = Message::Error {
            code: ErrorCode::Internal,
            message: "吊".repeat(30_000),
        };
        let f = to_frame(&m);
        let Some((Message::Error { message, .. }, _)) = decode(&f).unwrap() else {
            panic!("not an Error");
        };
        assert!(message.len() <= u16::MAX as usize && message.chars().all(|c| c == '吊'));
    }
}
