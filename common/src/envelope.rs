//! The document envelope: one document, many recipients, readable only by
//! them, provably from its sender. Pure functions and small state machines
//! over bytes; files and sockets are the callers' business.
//!
//! ```text
//! sealed document = header statement (signed by the sender) + content
//!
//! header  = metadata (sender, to, cc, 发文字号, 文种, 标题, urgency, deadline,
//!           operator, note, secrecy, files: name/kind/size/SHA-256)
//!           content_len, content SHA-256,
//!           wrapped content keys: HPKE(X25519, HKDF-SHA256, ChaCha20-Poly1305)
//!           of the 32-byte content key, one per recipient
//! content = files concatenated, AES-256-GCM in 256 KiB chunks;
//!           nonce = chunk index ‖ last-chunk flag, AAD = doc id
//! ```
//!
//! The signature covers the metadata, the file digests, the ciphertext
//! digest and every wrapped key, so neither the hub nor anyone on the way
//! can change a byte of any of them unnoticed. The chunk nonces make a
//! truncated or reordered content fail to open.

use std::collections::BTreeSet;

use hpke::{Deserializable, Kem as _, Serializable};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codec::{CodecError, Reader, Writer};
use crate::id::{DocId, NodeId};
use crate::pki::{CertChecker, CertIdentity, PkiError, Role};
use crate::signed::{SignedError, Signer, Statement, StatementKind};
use crate::suite::Suite;

pub mod tree;

/// Plaintext bytes per content chunk.
pub const CHUNK_LEN: usize = 256 * 1024;
/// AES-GCM tag bytes per chunk.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes per content chunk (all but the last chunk).
pub const SEALED_CHUNK_LEN: u64 = (CHUNK_LEN + TAG_LEN) as u64;
/// Longest title (标题), in characters.
pub const MAX_TITLE_CHARS: usize = 160;
/// The file gongwen writes beside a document's files in sent/ and inbox/.
pub const RESERVED_NAME: &str = "metadata.json";
/// Most recipients of one document (to and cc together). It was 1,000,
/// which a notice to a national group passes; a header that lists every
/// wrapped key reaches the 1 MiB frame at about 9,000 recipients, so a
/// larger list is sealed in the tree form ([`tree`]).
pub const MAX_RECIPIENTS: usize = 65_000;
/// Most files in one document.
pub const MAX_FILES: usize = 100;
/// Longest file name, in bytes (the usual file-system limit).
pub const MAX_NAME_BYTES: usize = 255;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;
const HPKE_INFO: &[u8] = b"gongwen/1 content-key";

/// 紧急程度.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    /// 平件
    #[default]
    Normal,
    /// 加急
    Urgent,
    /// 特急
    ExtraUrgent,
}

impl Urgency {
    /// The QUIC send priority of a stream carrying a document of this
    /// urgency, at the sender and at the hub: a 特急 document's stream goes
    /// before bulk on the same connection.
    pub fn stream_priority(self) -> i32 {
        match self {
            Urgency::ExtraUrgent => 2,
            Urgency::Urgent => 1,
            Urgency::Normal => 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Normal => "normal",
            Urgency::Urgent => "urgent",
            Urgency::ExtraUrgent => "extra-urgent",
        }
    }
    pub fn parse(s: &str) -> Option<Urgency> {
        match s {
            "normal" | "平件" => Some(Urgency::Normal),
            "urgent" | "加急" => Some(Urgency::Urgent),
            "extra-urgent" | "特急" => Some(Urgency::ExtraUrgent),
            _ => None,
        }
    }
    fn code(self) -> u8 {
        match self {
            Urgency::Normal => 0,
            Urgency::Urgent => 1,
            Urgency::ExtraUrgent => 2,
        }
    }
    fn from_code(c: u8) -> Result<Self, CodecError> {
        match c {
            0 => Ok(Urgency::Normal),
            1 => Ok(Urgency::Urgent),
            2 => Ok(Urgency::ExtraUrgent),
            other => Err(CodecError::BadCode {
                what: "urgency",
                code: other.into(),
            }),
        }
    }
}

/// 正文 or 附件.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// 正文: the main text.
    Main,
    /// 附件: an attachment.
    Attachment,
}

/// One file of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// 经办人.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Operator {
    pub name: String,
    pub phone: String,
}

pub use crate::deadline::Deadline;

/// Everything about a document that the hub may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocMeta {
    pub doc_id: DocId,
    pub sender: NodeId,
    /// 主送
    pub to: Vec<NodeId>,
    /// 抄送
    pub cc: Vec<NodeId>,
    /// 发文字号, e.g. 黑政发〔2026〕12号
    pub doc_number: String,
    /// 文种: 通知, 函, 报告, 请示, 纪要 …
    pub doc_type: String,
    /// 标题
    pub title: String,
    pub urgency: Urgency,
    /// Acknowledgment deadline, if the sender set one.
    pub deadline: Option<Deadline>,
    /// When the sender made it (Unix milliseconds).
    pub created_ms: i64,
    pub operator: Operator,
    /// 附注 / cover note
    pub note: String,
    pub files: Vec<FileEntry>,
    /// Asks for an answer, answers another, forwards another (after the
    /// rest of the header; none for most documents).
    pub links: crate::links::Links,
    /// The GB/T 9704 elements it states (签发人, 成文日期 …; after the
    /// links; none from older agents).
    pub elements: crate::elements::Elements,
}

/// A recipient's content key, sealed to its encryption key: HPKE to its
/// X25519 key (standard), or SM2 encryption to its SM2 encryption key (GM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub recipient: NodeId,
    /// HPKE encapsulated key (standard); zeros in the GM suite.
    pub enc: [u8; 32],
    /// HPKE ciphertext of the 32-byte content key (48 bytes), or the SM2
    /// ciphertext (GM/T 0009 DER, C1C3C2) of the 16-byte SM4 key.
    pub sealed: Vec<u8>,
}

/// Largest SM2 ciphertext of a content key (about 125 bytes in practice).
const MAX_SM2_WRAPPED: usize = 256;

impl WrappedKey {
    /// As a header's list and a tree's leaf carry it: the recipient, the
    /// HPKE encapsulated key (standard only), the sealed content key.
    fn encode(&self, w: &mut Writer<'_>, suite: Suite) {
        w.str(self.recipient.as_str());
        if suite == Suite::Standard {
            w.raw(&self.enc);
        }
        w.bytes(&self.sealed);
    }

    fn decode(r: &mut Reader<'_>, suite: Suite) -> Result<WrappedKey, CodecError> {
        let recipient = r.node_id()?;
        Ok(match suite {
            Suite::Standard => WrappedKey {
                recipient,
                enc: r.array()?,
                sealed: r.bytes(64)?.to_vec(),
            },
            Suite::Gm => WrappedKey {
                recipient,
                enc: [0; 32],
                sealed: r.bytes(MAX_SM2_WRAPPED)?.to_vec(),
            },
        })
    }
}

/// The signed part of a sealed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub meta: DocMeta,
    pub content_len: u64,
    /// The content's digest in the suite's algorithm (SHA-256 or SM3).
    pub content_sha256: [u8; 32],
    pub wrapped: Vec<WrappedKey>,
    /// The suite the header is signed in (not encoded: the statement
    /// carrying it says).
    pub suite: Suite,
    /// In the tree form, what is signed in place of the wrapped keys (and
    /// of `to` and `cc`, which the keys' leaves carry); see [`tree`].
    pub tree: Option<tree::TreeInfo>,
}

/// Why metadata is not acceptable; each says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    #[error("the document has no main recipient (主送)")]
    NoRecipient,
    #[error("{0}")]
    Links(String),
    #[error("more than {MAX_RECIPIENTS} recipients")]
    TooManyRecipients,
    #[error("{0} is listed twice among the recipients")]
    DuplicateRecipient(NodeId),
    #[error("a unit cannot send a document to itself ({0})")]
    SelfAddressed(NodeId),
    #[error(
        "the title is empty; give it in the sidecar (title = \"...\") or name the file after it"
    )]
    EmptyTitle,
    #[error("the title is {0} characters long; at most {MAX_TITLE_CHARS} are allowed")]
    TitleTooLong(usize),
    #[error("the {field} is {len} characters long; at most {max} are allowed")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the {0} contains control characters")]
    ControlCharacters(&'static str),
    #[error("a document needs at least one file")]
    NoFiles,
    #[error("more than {MAX_FILES} files in one document")]
    TooManyFiles,
    #[error("a document needs exactly one main text (正文); it has {0}")]
    MainTextCount(usize),
    #[error("file name {0:?} is not allowed: {1}")]
    BadFileName(String, &'static str),
    #[error("two files are named {0:?}")]
    DuplicateFileName(String),
    #[error(
        "secrecy level {0:?} is refused: this network carries only non-classified documents (密级 none)"
    )]
    Classified(String),
}

/// Why a sealed document cannot be opened or trusted. Each names what is
/// wrong, so a quarantine reason says which part was tampered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("the header is not a signed document statement: {0}")]
    Statement(SignedError),
    #[error("the header's fields are malformed: {0}")]
    HeaderMalformed(CodecError),
    #[error("the header's metadata is not acceptable: {0}")]
    Meta(#[from] MetaError),
    #[error("the wrapped keys do not match the recipients")]
    WrappedKeysMismatch,
    #[error("the header's signature does not verify (header, wrapped keys or signature altered)")]
    BadSignature,
    #[error("the document claims sender {claimed} but is signed by {signer}")]
    SignerNotSender { claimed: NodeId, signer: NodeId },
    #[error("the document is signed with a {0} certificate; only units send documents")]
    SignerRole(Role),
    #[error("the sender's certificate is not valid: {0}")]
    SignerCertificate(String),
    /// Not a fault of the document: the signer cannot be judged now (the
    /// revocation list is stale). Try again when a fresh one arrives.
    #[error("the sender's certificate cannot be checked now: {0}")]
    SignerUnjudged(String),
    #[error("this unit ({0}) is not a recipient of the document")]
    NotARecipient(NodeId),
    #[error("the wrapped content key cannot be opened (altered, or sealed for another key)")]
    KeyUnwrap,
    #[error("the content is {got} bytes; the header promises {expected}")]
    ContentLength { expected: u64, got: u64 },
    #[error("the content's SHA-256 does not match the signed header (content altered)")]
    ContentDigest,
    #[error("content chunk {0} fails authentication (content altered or truncated)")]
    ChunkAuth(u64),
    #[error("file {0:?} does not match its signed SHA-256")]
    FileDigest(String),
    #[error("the content key could not be made or used")]
    Crypto,
    #[error("the forwarded original does not hold: {0}")]
    Forwarded(String),
    #[error("the document is refused: {0}")]
    Suite(String),
}

impl EnvelopeError {
    fn from_signer_check(e: PkiError) -> Self {
        match e {
            PkiError::Invalid { problem, .. } if problem.is_transient() => {
                EnvelopeError::SignerUnjudged(problem.to_string())
            }
            PkiError::Invalid { problem, .. } => {
                EnvelopeError::SignerCertificate(problem.to_string())
            }
            other => EnvelopeError::SignerCertificate(other.to_string()),
        }
    }

    /// True when the same document may pass later (see
    /// [`EnvelopeError::SignerUnjudged`]); every other error is final.
    pub fn is_transient(&self) -> bool {
        matches!(self, EnvelopeError::SignerUnjudged(_))
    }
}

impl From<SignedError> for EnvelopeError {
    fn from(e: SignedError) -> Self {
        match e {
            SignedError::BadSignature => EnvelopeError::BadSignature,
            other => EnvelopeError::Statement(other),
        }
    }
}

impl From<CodecError> for EnvelopeError {
    fn from(e: CodecError) -> Self {
        EnvelopeError::HeaderMalformed(e)
    }
}

/// Check a file name from another unit before it becomes a path: one
/// plain name, no separators, no `..`, no NUL or control characters.
pub fn check_file_name(name: &str) -> Result<(), MetaError> {
    let bad = |why| Err(MetaError::BadFileName(name.to_owned(), why));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("it is longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return bad("it names a directory");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("it contains a path separator");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains control characters (NUL, newline …)");
    }
    if name.chars().any(is_direction_control) {
        return bad(
            "it contains an invisible text-direction character (such as U+202E), which can make a name look like another (正文\u{202e}fdp.exe shows as 正文exe.pdf): rename the file",
        );
    }
    if name.eq_ignore_ascii_case(RESERVED_NAME) {
        return bad("metadata.json is gongwen's own record beside the files; rename the file");
    }
    Ok(())
}

/// The Unicode characters that change the direction text is shown in
/// (bidirectional embeddings, overrides, isolates and marks).
pub fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), MetaError> {
    let len = s.chars().count();
    if len > max {
        return Err(MetaError::FieldTooLong { field, len, max });
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(MetaError::ControlCharacters(field));
    }
    Ok(())
}

/// Check a secrecy level (密级): only none is carried.
pub fn check_secrecy(level: &str) -> Result<(), MetaError> {
    match level.trim() {
        "" | "none" | "无" | "非密" => Ok(()),
        other => Err(MetaError::Classified(other.to_owned())),
    }
}

impl DocMeta {
    /// Every recipient, main ones first, each once.
    pub fn recipients(&self) -> Vec<NodeId> {
        let mut seen = BTreeSet::new();
        self.to
            .iter()
            .chain(&self.cc)
            .filter(|id| seen.insert((*id).clone()))
            .cloned()
            .collect()
    }

    /// Total plaintext bytes.
    pub fn plain_len(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Everything a sender must get right; recipients check it again.
    pub fn validate(&self) -> Result<(), MetaError> {
        if self.to.is_empty() {
            return Err(MetaError::NoRecipient);
        }
        self.validate_except_presence()
    }

    /// [`DocMeta::validate`] but for "at least one main recipient": a
    /// tree-form header's signed part lists none (its leaves do).
    pub(crate) fn validate_except_presence(&self) -> Result<(), MetaError> {
        if let Some(a) = &self.links.answers
            && (a.doc_id == self.doc_id || a.supersedes == Some(self.doc_id))
        {
            return Err(MetaError::Links(
                "a document cannot answer or correct itself".into(),
            ));
        }
        if let Some(original) = &self.links.forwards
            && Statement::decode(original, StatementKind::Document).is_err()
        {
            return Err(MetaError::Links(
                "the forwarded original is not a signed document header".into(),
            ));
        }
        if self.to.len() + self.cc.len() > MAX_RECIPIENTS {
            return Err(MetaError::TooManyRecipients);
        }
        let mut seen = BTreeSet::new();
        for id in self.to.iter().chain(&self.cc) {
            if !seen.insert(id) {
                return Err(MetaError::DuplicateRecipient(id.clone()));
            }
            if *id == self.sender {
                return Err(MetaError::SelfAddressed(id.clone()));
            }
        }
        let title_len = self.title.chars().count();
        if self.title.trim().is_empty() {
            return Err(MetaError::EmptyTitle);
        }
        if title_len > MAX_TITLE_CHARS {
            return Err(MetaError::TitleTooLong(title_len));
        }
        check_text("title", &self.title, MAX_TITLE_CHARS)?;
        check_text("document number", &self.doc_number, 64)?;
        check_text("document type", &self.doc_type, 16)?;
        check_text("note", &self.note, 2000)?;
        check_text("operator name", &self.operator.name, 64)?;
        check_text("operator phone", &self.operator.phone, 32)?;
        if self.files.is_empty() {
            return Err(MetaError::NoFiles);
        }
        if self.files.len() > MAX_FILES {
            return Err(MetaError::TooManyFiles);
        }
        let mains = self
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Main)
            .count();
        if mains != 1 {
            return Err(MetaError::MainTextCount(mains));
        }
        let mut names = BTreeSet::new();
        for f in &self.files {
            check_file_name(&f.name)?;
            if !names.insert(f.name.as_str()) {
                return Err(MetaError::DuplicateFileName(f.name.clone()));
            }
        }
        Ok(())
    }

    fn encode(&self, w: &mut Writer<'_>) {
        w.raw(self.doc_id.as_bytes());
        w.str(self.sender.as_str());
        w.node_ids(&self.to);
        w.node_ids(&self.cc);
        w.str(&self.doc_number);
        w.str(&self.doc_type);
        w.str(&self.title);
        w.u8(self.urgency.code());
        match self.deadline {
            None => w.u8(0),
            Some(Deadline::At(s)) => {
                w.u8(1);
                w.i64(s);
            }
            Some(Deadline::Within(d)) => {
                w.u8(2);
                w.u64(d);
            }
        }
        w.i64(self.created_ms);
        w.str(&self.operator.name);
        w.str(&self.operator.phone);
        w.str(&self.note);
        // Secrecy: only "none" (0) exists on this network.
        w.u8(0);
        w.u16(self.files.len().min(u16::MAX as usize) as u16);
        for f in &self.files {
            w.str(&f.name);
            w.u8(match f.kind {
                FileKind::Main => 0,
                FileKind::Attachment => 1,
            });
            w.u64(f.size);
            w.raw(&f.sha256);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<DocMeta, EnvelopeError> {
        let doc_id = DocId::from_bytes(r.array()?);
        let sender = r.node_id()?;
        let to = r.node_ids(MAX_RECIPIENTS)?;
        let cc = r.node_ids(MAX_RECIPIENTS)?;
        let doc_number = r.string()?;
        let doc_type = r.string()?;
        let title = r.string()?;
        let urgency = Urgency::from_code(r.u8()?)?;
        let deadline = match r.u8()? {
            0 => None,
            1 => Some(Deadline::At(r.i64()?)),
            2 => Some(Deadline::Within(r.u64()?)),
            other => {
                return Err(CodecError::BadCode {
                    what: "deadline flag",
                    code: other.into(),
                }
                .into());
            }
        };
        let created_ms = r.i64()?;
        let operator = Operator {
            name: r.string()?,
            phone: r.string()?,
        };
        let note = r.string()?;
        let secrecy = r.u8()?;
        if secrecy != 0 {
            return Err(MetaError::Classified(format!("level code {secrecy}")).into());
        }
        let n = r.u16()? as usize;
        if n > MAX_FILES {
            return Err(MetaError::TooManyFiles.into());
        }
        let mut files = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string()?;
            let kind = match r.u8()? {
                0 => FileKind::Main,
                1 => FileKind::Attachment,
                other => {
                    return Err(CodecError::BadCode {
                        what: "file kind",
                        code: other.into(),
                    }
                    .into());
                }
            };
            files.push(FileEntry {
                name,
                kind,
                size: r.u64()?,
                sha256: r.array()?,
            });
        }
        Ok(DocMeta {
            doc_id,
            sender,
            to,
            cc,
            doc_number,
            doc_type,
            title,
            urgency,
            deadline,
            created_ms,
            operator,
            note,
            files,
            // Read by [`Header::decode`]: they end the header.
            links: Default::default(),
            elements: Default::default(),
        })
    }
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        self.meta.encode(&mut w);
        w.u64(self.content_len);
        w.raw(&self.content_sha256);
        match &self.tree {
            Some(t) => {
                w.u16(tree::TREE_MARK);
                t.encode(&mut w);
            }
            None => {
                w.u16(self.wrapped.len().min(MAX_RECIPIENTS) as u16);
                for k in &self.wrapped {
                    k.encode(&mut w, self.suite);
                }
            }
        }
        self.meta.links.encode_trailer(&self.meta.elements, &mut w);
        out
    }

    /// Parse and check a header body, signed in `suite`, for internal
    /// consistency.
    pub fn decode(body: &[u8], suite: Suite) -> Result<Header, EnvelopeError> {
        let mut r = Reader::new(body);
        let mut meta = DocMeta::decode(&mut r)?;
        let content_len = r.u64()?;
        let content_sha256 = r.array()?;
        let n = r.u16()? as usize;
        if n == usize::from(tree::TREE_MARK) {
            let info = tree::TreeInfo::decode(&mut r)?;
            (meta.links, meta.elements) = crate::links::Links::decode_trailer(&mut r)?;
            r.finish()?;
            info.check_meta(&meta)?;
            return Header::finish(
                meta,
                content_len,
                content_sha256,
                Vec::new(),
                suite,
                Some(info),
            );
        }
        if n > MAX_RECIPIENTS {
            return Err(MetaError::TooManyRecipients.into());
        }
        let wrapped = (0..n)
            .map(|_| WrappedKey::decode(&mut r, suite))
            .collect::<Result<Vec<_>, _>>()?;
        (meta.links, meta.elements) = crate::links::Links::decode_trailer(&mut r)?;
        r.finish()?;
        meta.validate()?;
        let recipients: BTreeSet<_> = meta.recipients().into_iter().collect();
        let wrapped_for: BTreeSet<_> = wrapped.iter().map(|k| k.recipient.clone()).collect();
        if recipients != wrapped_for || wrapped_for.len() != wrapped.len() {
            return Err(EnvelopeError::WrappedKeysMismatch);
        }
        Header::finish(meta, content_len, content_sha256, wrapped, suite, None)
    }

    fn finish(
        meta: DocMeta,
        content_len: u64,
        content_sha256: [u8; 32],
        wrapped: Vec<WrappedKey>,
        suite: Suite,
        tree: Option<tree::TreeInfo>,
    ) -> Result<Header, EnvelopeError> {
        if content_len != content_len_for(meta.plain_len()) {
            return Err(EnvelopeError::ContentLength {
                expected: content_len_for(meta.plain_len()),
                got: content_len,
            });
        }
        Ok(Header {
            meta,
            content_len,
            content_sha256,
            wrapped,
            suite,
            tree,
        })
    }
}

/// A parsed (not yet trusted) sealed-document header.
#[derive(Debug, Clone)]
pub struct SealedHeader {
    pub statement: Statement,
    pub header: Header,
    /// Which form the bytes were in.
    pub form: tree::Form,
}

impl SealedHeader {
    /// Parse the bytes of a header: a signed statement, or (the tree form)
    /// one with every key's leaf, or with one recipient's leaf and its
    /// path ([`tree`]). The leaves' `to` and `cc` are filled in: all of
    /// them, or the one recipient's.
    pub fn parse(bytes: &[u8]) -> Result<SealedHeader, EnvelopeError> {
        tree::parse(bytes)
    }

    /// The signed statement's bytes: what a forward carries and receipts
    /// cite, whatever form this header came in.
    pub fn statement_bytes(&self) -> Vec<u8> {
        self.statement.encode()
    }

    pub fn meta(&self) -> &DocMeta {
        &self.header.meta
    }

    /// The suite's digest (SHA-256 or SM3) of the signed header: the
    /// document's fingerprint, which receipts cite.
    pub fn digest(&self) -> [u8; 32] {
        self.statement.digest()
    }

    /// The signature verifies, the signer is the stated sender, and (with
    /// a checker) the signer's certificate is valid at `now`.
    pub fn verify(
        &self,
        checker: Option<&CertChecker>,
        now: OffsetDateTime,
    ) -> Result<CertIdentity, EnvelopeError> {
        self.verify_across(checker, checker, now)
    }

    /// The signed header of the original a forward (转发) carries, if any.
    pub fn original(&self) -> Option<SealedHeader> {
        self.header
            .meta
            .links
            .forwards
            .as_deref()
            .and_then(|o| SealedHeader::parse(o).ok())
    }

    /// [`SealedHeader::verify`], a forwarded original judged by
    /// `original_checker`: the forward of a national notice by a province
    /// carries a header signed in another domain than its own.
    pub fn verify_across(
        &self,
        checker: Option<&CertChecker>,
        original_checker: Option<&CertChecker>,
        now: OffsetDateTime,
    ) -> Result<CertIdentity, EnvelopeError> {
        let signer = self.statement.verify_signature()?;
        if signer.id != self.header.meta.sender {
            return Err(EnvelopeError::SignerNotSender {
                claimed: self.header.meta.sender.clone(),
                signer: signer.id,
            });
        }
        if signer.role == Role::Hub {
            return Err(EnvelopeError::SignerRole(signer.role));
        }
        if let Some(checker) = checker {
            checker
                .check_suite(self.statement.suite())
                .map_err(EnvelopeError::Suite)?;
            checker
                .check(&self.statement.cert, now)
                .map_err(EnvelopeError::from_signer_check)?;
        }
        if let Some(original) = &self.header.meta.links.forwards {
            self.check_forwarded(original, original_checker, now)?;
        }
        Ok(signer)
    }

    /// A forward (转发) carries its first issuer's signed header: it must
    /// verify on its own (signature, signer, certificate), be an original
    /// (not itself a forward), and list exactly the files this one carries
    /// — so the final recipient knows who first issued it and that the
    /// files are the original's.
    fn check_forwarded(
        &self,
        original: &[u8],
        checker: Option<&CertChecker>,
        now: OffsetDateTime,
    ) -> Result<(), EnvelopeError> {
        let bad = |why: String| EnvelopeError::Forwarded(why);
        let orig = SealedHeader::parse(original).map_err(|e| bad(e.to_string()))?;
        if orig.header.meta.links.forwards.is_some() {
            return Err(bad(
                "it is itself a forward; a forward carries the first issuer's original".into(),
            ));
        }
        orig.verify(checker, now).map_err(|e| bad(e.to_string()))?;
        let files = |m: &DocMeta| {
            m.files
                .iter()
                .map(|f| (f.name.clone(), f.kind, f.size, f.sha256))
                .collect::<Vec<_>>()
        };
        if files(&orig.header.meta) != files(&self.header.meta) {
            return Err(bad(
                "its files are not the original's (names, sizes or SHA-256 differ)".into(),
            ));
        }
        Ok(())
    }
}

/// Ciphertext bytes for `plain` plaintext bytes (every chunk, even an empty
/// last one, carries a tag).
pub fn content_len_for(plain: u64) -> u64 {
    let chunks = plain.div_ceil(CHUNK_LEN as u64).max(1);
    plain + chunks * TAG_LEN as u64
}

/// The random key that encrypts one document's content: 32 bytes for
/// AES-256-GCM (standard), of which the first 16 are the SM4 key (GM).
pub struct ContentKey {
    bytes: [u8; 32],
    suite: Suite,
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentKey({}, ..)", self.suite)
    }
}

/// A content key's AEAD for the chunks.
enum ChunkAead {
    Aes(Box<LessSafeKey>),
    Sm4([u8; crate::gm::SM4_KEY_LEN]),
}

impl ChunkAead {
    /// Encrypt `chunk` in place and append the tag.
    fn seal(&self, nonce: [u8; 12], aad: &[u8], chunk: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        match self {
            ChunkAead::Aes(key) => key
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    chunk,
                )
                .map_err(|_| EnvelopeError::Crypto),
            ChunkAead::Sm4(key) => crate::gm::sm4_gcm_seal_in_place(key, &nonce, aad, chunk)
                .map_err(|_| EnvelopeError::Crypto),
        }
    }

    /// Decrypt `chunk` (ciphertext and tag) in place; the plaintext's
    /// length (it is at the start of `chunk`).
    fn open(&self, nonce: [u8; 12], aad: &[u8], chunk: &mut [u8]) -> Result<usize, ()> {
        match self {
            ChunkAead::Aes(key) => key
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), chunk)
                .map(|plain| plain.len())
                .map_err(|_| ()),
            ChunkAead::Sm4(key) => {
                crate::gm::sm4_gcm_open_in_place(key, &nonce, aad, chunk).map_err(|_| ())
            }
        }
    }
}

impl ContentKey {
    /// The raw key, for the sender's own spool only: it re-encrypts the
    /// document's files when an upload resumes (they lie beside it in
    /// plaintext, so keeping the key there exposes nothing more).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    pub fn from_bytes(bytes: [u8; 32], suite: Suite) -> ContentKey {
        ContentKey { bytes, suite }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    pub fn generate(suite: Suite) -> Result<ContentKey, EnvelopeError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| EnvelopeError::Crypto)?;
        Ok(ContentKey { bytes, suite })
    }

    /// The SM4 key (GM): the first 16 bytes.
    fn sm4_key(&self) -> [u8; crate::gm::SM4_KEY_LEN] {
        let mut k = [0u8; crate::gm::SM4_KEY_LEN];
        k.copy_from_slice(&self.bytes[..crate::gm::SM4_KEY_LEN]);
        k
    }

    fn aead(&self) -> Result<ChunkAead, EnvelopeError> {
        Ok(match self.suite {
            Suite::Standard => ChunkAead::Aes(Box::new(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &self.bytes).map_err(|_| EnvelopeError::Crypto)?,
            ))),
            Suite::Gm => ChunkAead::Sm4(self.sm4_key()),
        })
    }

    /// Seal this key for `recipient`'s encryption key: its X25519 public
    /// key (standard, 32 bytes) or its SM2 encryption key (GM, SEC1).
    pub fn wrap(
        &self,
        doc_id: DocId,
        recipient: &NodeId,
        public: &[u8],
    ) -> Result<WrappedKey, EnvelopeError> {
        if self.suite == Suite::Gm {
            // The wrapped keys are inside the signed header, which binds
            // them to the document and the recipient.
            let sealed =
                crate::gm::encrypt(public, &self.sm4_key()).map_err(|_| EnvelopeError::Crypto)?;
            return Ok(WrappedKey {
                recipient: recipient.clone(),
                enc: [0; 32],
                sealed,
            });
        }
        let pk =
            <Kem as hpke::Kem>::PublicKey::from_bytes(public).map_err(|_| EnvelopeError::Crypto)?;
        let (enc, sealed) = hpke::single_shot_seal::<HpkeAead, Kdf, Kem>(
            &hpke::OpModeS::Base,
            &pk,
            HPKE_INFO,
            &self.bytes,
            &wrap_aad(doc_id, recipient),
        )
        .map_err(|_| EnvelopeError::Crypto)?;
        let mut enc_bytes = [0u8; 32];
        enc_bytes.copy_from_slice(&enc.to_bytes());
        Ok(WrappedKey {
            recipient: recipient.clone(),
            enc: enc_bytes,
            sealed,
        })
    }

    fn wrapped_for<'h>(header: &'h Header, me: &NodeId) -> Result<&'h WrappedKey, EnvelopeError> {
        header
            .wrapped
            .iter()
            .find(|k| &k.recipient == me)
            .ok_or_else(|| EnvelopeError::NotARecipient(me.clone()))
    }

    /// Open the key wrapped for `me` in a standard `header`.
    pub fn unwrap(
        header: &Header,
        me: &NodeId,
        key: &EncryptionKey,
    ) -> Result<ContentKey, EnvelopeError> {
        let wrapped = ContentKey::wrapped_for(header, me)?;
        if header.suite != Suite::Standard {
            return Err(EnvelopeError::KeyUnwrap);
        }
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc)
            .map_err(|_| EnvelopeError::KeyUnwrap)?;
        let plain = hpke::single_shot_open::<HpkeAead, Kdf, Kem>(
            &hpke::OpModeR::Base,
            &key.secret,
            &enc,
            HPKE_INFO,
            &wrapped.sealed,
            &wrap_aad(header.meta.doc_id, me),
        )
        .map_err(|_| EnvelopeError::KeyUnwrap)?;
        let bytes: [u8; 32] = plain.try_into().map_err(|_| EnvelopeError::KeyUnwrap)?;
        Ok(ContentKey {
            bytes,
            suite: Suite::Standard,
        })
    }

    /// Open the key wrapped for `me` in a GM `header` with its SM2
    /// encryption key.
    pub fn unwrap_sm2(
        header: &Header,
        me: &NodeId,
        key: &crate::gm::Sm2Key,
    ) -> Result<ContentKey, EnvelopeError> {
        let wrapped = ContentKey::wrapped_for(header, me)?;
        if header.suite != Suite::Gm {
            return Err(EnvelopeError::KeyUnwrap);
        }
        let plain = key
            .decrypt(&wrapped.sealed)
            .map_err(|_| EnvelopeError::KeyUnwrap)?;
        if plain.len() != crate::gm::SM4_KEY_LEN {
            return Err(EnvelopeError::KeyUnwrap);
        }
        let mut bytes = [0u8; 32];
        bytes[..crate::gm::SM4_KEY_LEN].copy_from_slice(&plain);
        Ok(ContentKey {
            bytes,
            suite: Suite::Gm,
        })
    }
}

fn wrap_aad(doc_id: DocId, recipient: &NodeId) -> Vec<u8> {
    let mut aad = doc_id.as_bytes().to_vec();
    aad.extend_from_slice(recipient.as_str().as_bytes());
    aad
}

fn chunk_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[8] = u8::from(last);
    n
}

/// Encrypts a document's content chunk by chunk (feed exactly
/// [`CHUNK_LEN`] bytes each time, fewer only for the last chunk).
pub struct ContentSealer {
    key: ChunkAead,
    doc_id: DocId,
    index: u64,
    remaining: u64,
    finished: bool,
}

impl std::fmt::Debug for ContentSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentSealer")
            .field("index", &self.index)
            .finish()
    }
}

impl ContentSealer {
    pub fn new(key: &ContentKey, doc_id: DocId, plain_len: u64) -> Result<Self, EnvelopeError> {
        Ok(ContentSealer {
            key: key.aead()?,
            doc_id,
            index: 0,
            remaining: plain_len,
            finished: false,
        })
    }

    /// A sealer that continues at chunk `index` of the same content: the
    /// nonces depend only on the index, so it produces the same ciphertext
    /// from there on as the sealer that started at 0.
    pub fn starting_at(
        key: &ContentKey,
        doc_id: DocId,
        plain_len: u64,
        index: u64,
    ) -> Result<Self, EnvelopeError> {
        let skipped = index.saturating_mul(CHUNK_LEN as u64);
        if skipped > plain_len || (skipped == plain_len && plain_len > 0) {
            return Err(EnvelopeError::ContentLength {
                expected: plain_len,
                got: skipped,
            });
        }
        Ok(ContentSealer {
            key: key.aead()?,
            doc_id,
            index,
            remaining: plain_len - skipped,
            finished: false,
        })
    }

    /// Encrypt the next chunk in place and append the tag.
    pub fn seal_chunk(&mut self, chunk: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        let n = chunk.len() as u64;
        let expected = self.remaining.min(CHUNK_LEN as u64);
        if self.finished || n != expected {
            return Err(EnvelopeError::ContentLength { expected, got: n });
        }
        self.remaining -= n;
        let last = self.remaining == 0;
        self.key
            .seal(chunk_nonce(self.index, last), self.doc_id.as_bytes(), chunk)?;
        self.index += 1;
        self.finished = last;
        Ok(())
    }

    /// True once the last chunk was sealed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Decrypts a document's content chunk by chunk, in order.
pub struct ContentOpener {
    key: ChunkAead,
    doc_id: DocId,
    index: u64,
    remaining: u64,
}

impl std::fmt::Debug for ContentOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentOpener")
            .field("index", &self.index)
            .finish()
    }
}

impl ContentOpener {
    pub fn new(key: &ContentKey, header: &Header) -> Result<Self, EnvelopeError> {
        if key.suite != header.suite {
            return Err(EnvelopeError::Crypto);
        }
        Ok(ContentOpener {
            key: key.aead()?,
            doc_id: header.meta.doc_id,
            index: 0,
            remaining: header.content_len,
        })
    }

    /// An opener that continues at chunk `index` (a resumed download whose
    /// earlier chunks were already decrypted).
    pub fn at_chunk(key: &ContentKey, header: &Header, index: u64) -> Result<Self, EnvelopeError> {
        if key.suite != header.suite {
            return Err(EnvelopeError::Crypto);
        }
        let skipped = index.saturating_mul(SEALED_CHUNK_LEN);
        if skipped >= header.content_len && index > 0 {
            return Err(EnvelopeError::ContentLength {
                expected: header.content_len,
                got: skipped,
            });
        }
        Ok(ContentOpener {
            key: key.aead()?,
            doc_id: header.meta.doc_id,
            index,
            remaining: header.content_len - skipped,
        })
    }

    /// Bytes of ciphertext the next chunk has (0 when done).
    pub fn next_chunk_len(&self) -> usize {
        self.remaining.min((CHUNK_LEN + TAG_LEN) as u64) as usize
    }

    /// Decrypt the next chunk in place; returns its plaintext length.
    pub fn open_chunk(&mut self, chunk: &mut [u8]) -> Result<usize, EnvelopeError> {
        let expected = self.next_chunk_len();
        if chunk.len() != expected || expected < TAG_LEN {
            return Err(EnvelopeError::ChunkAuth(self.index));
        }
        self.remaining -= expected as u64;
        let last = self.remaining == 0;
        let n = self
            .key
            .open(chunk_nonce(self.index, last), self.doc_id.as_bytes(), chunk)
            .map_err(|_| EnvelopeError::ChunkAuth(self.index))?;
        self.index += 1;
        Ok(n)
    }

    pub fn is_finished(&self) -> bool {
        self.remaining == 0
    }
}

/// A unit's X25519 key for receiving documents.
pub struct EncryptionKey {
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: [u8; 32],
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("public", &crate::pki::serial_hex(&self.public))
            .finish()
    }
}

impl EncryptionKey {
    /// A fresh key from the system's random source.
    pub fn generate() -> Result<EncryptionKey, EnvelopeError> {
        let mut ikm = [0u8; 32];
        SystemRandom::new()
            .fill(&mut ikm)
            .map_err(|_| EnvelopeError::Crypto)?;
        let (secret, _) = Kem::derive_keypair(&ikm);
        Ok(Self::from_secret(secret))
    }

    fn from_secret(secret: <Kem as hpke::Kem>::PrivateKey) -> EncryptionKey {
        let mut public = [0u8; 32];
        public.copy_from_slice(&Kem::sk_to_pk(&secret).to_bytes());
        EncryptionKey { secret, public }
    }

    /// From the 32 secret bytes [`EncryptionKey::secret_bytes`] gave.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<EncryptionKey, EnvelopeError> {
        let secret =
            <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes).map_err(|_| EnvelopeError::Crypto)?;
        Ok(Self::from_secret(secret))
    }

    pub fn secret_bytes(&self) -> Vec<u8> {
        self.secret.to_bytes().to_vec()
    }

    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }
}

/// "This X25519 key is how to reach node N", signed by N's certificate key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBinding {
    pub node: NodeId,
    pub public: [u8; 32],
    pub created_ms: i64,
}

impl KeyBinding {
    pub fn sign(&self, signer: &Signer) -> Result<Statement, PkiError> {
        signer.sign(StatementKind::KeyBinding, self.body())
    }

    /// Signed with the unit's bare key (PKCS#8 DER) before any certificate
    /// exists for it: the encoded statement carries none until the CA adds
    /// the one it issues ([`Statement::with_cert`]).
    pub fn sign_with_key(&self, pkcs8: &[u8]) -> Result<Vec<u8>, PkiError> {
        Ok(
            crate::signed::sign_with_key(
                pkcs8,
                StatementKind::KeyBinding,
                self.body(),
                Vec::new(),
            )?
            .encode(),
        )
    }

    fn body(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let mut w = Writer(&mut body);
        w.str(self.node.as_str());
        w.raw(&self.public);
        w.i64(self.created_ms);
        body
    }

    /// Parse and verify a binding: signed by the node it names, with a
    /// certificate valid at `now` (when a checker is given).
    pub fn verify(
        bytes: &[u8],
        checker: Option<&CertChecker>,
        now: OffsetDateTime,
    ) -> Result<KeyBinding, EnvelopeError> {
        let st = Statement::decode(bytes, StatementKind::KeyBinding)?;
        let signer = st.verify_signature()?;
        let mut r = Reader::new(&st.body);
        let binding = KeyBinding {
            node: r.node_id()?,
            public: r.array()?,
            created_ms: r.i64()?,
        };
        r.finish()?;
        if signer.id != binding.node {
            return Err(EnvelopeError::SignerNotSender {
                claimed: binding.node,
                signer: signer.id,
            });
        }
        if let Some(checker) = checker {
            checker
                .check(&st.cert, now)
                .map_err(EnvelopeError::from_signer_check)?;
        }
        Ok(binding)
    }
}

/// The private key a unit opens documents with: its X25519 key
/// (standard suite) or its SM2 encryption key (GM suite).
#[derive(Debug)]
pub enum DocumentKey {
    X25519(EncryptionKey),
    Sm2(crate::gm::Sm2Key),
}

impl DocumentKey {
    pub fn suite(&self) -> Suite {
        match self {
            DocumentKey::X25519(_) => Suite::Standard,
            DocumentKey::Sm2(_) => Suite::Gm,
        }
    }

    /// The public half others seal to (32 bytes X25519, or SEC1 SM2).
    pub fn public(&self) -> Vec<u8> {
        match self {
            DocumentKey::X25519(k) => k.public().to_vec(),
            DocumentKey::Sm2(k) => k.public(),
        }
    }

    /// The content key of a document addressed to `me`.
    pub fn unwrap(&self, header: &Header, me: &NodeId) -> Result<ContentKey, EnvelopeError> {
        if header.suite != self.suite() {
            return Err(EnvelopeError::Suite(format!(
                "the document is sealed in the {} suite and this unit's key is a {} one",
                header.suite,
                self.suite()
            )));
        }
        match self {
            DocumentKey::X25519(k) => ContentKey::unwrap(header, me, k),
            DocumentKey::Sm2(k) => ContentKey::unwrap_sm2(header, me, k),
        }
    }
}

/// How to reach a unit, as it published it: the public key documents for
/// it are sealed to, bound to the unit by its certificate key — a
/// [`KeyBinding`] (X25519, standard suite) or an SM2 binding (its SM2
/// encryption key, GM suite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachKey {
    pub node: NodeId,
    pub suite: Suite,
    pub public: Vec<u8>,
    pub created_ms: i64,
}

impl ReachKey {
    /// Parse and verify either kind of binding: signed by the key of the
    /// certificate it carries, for the unit that certificate names, and
    /// (with a checker) that certificate valid at `now`.
    pub fn verify(
        bytes: &[u8],
        checker: Option<&CertChecker>,
        now: OffsetDateTime,
    ) -> Result<ReachKey, EnvelopeError> {
        if let Ok(st) = Statement::decode(bytes, StatementKind::Sm2KeyBinding) {
            let identity =
                CertIdentity::from_der(&st.cert).map_err(EnvelopeError::from_signer_check)?;
            let bound = crate::signed::Sm2Binding::verify(bytes, &st.cert, &identity)
                .map_err(EnvelopeError::Statement)?;
            if let Some(checker) = checker {
                checker
                    .check(&st.cert, now)
                    .map_err(EnvelopeError::from_signer_check)?;
            }
            return Ok(ReachKey {
                node: bound.node,
                suite: Suite::Gm,
                public: bound.enc_public,
                created_ms: bound.created_ms,
            });
        }
        let b = KeyBinding::verify(bytes, checker, now)?;
        Ok(ReachKey {
            node: b.node,
            suite: Suite::Standard,
            public: b.public.to_vec(),
            created_ms: b.created_ms,
        })
    }

    /// The statement of a binding of either kind, unchecked (for
    /// listings: the certificate it carries names the unit).
    pub fn statement_of(bytes: &[u8]) -> Option<Statement> {
        Statement::decode(bytes, StatementKind::Sm2KeyBinding)
            .or_else(|_| Statement::decode(bytes, StatementKind::KeyBinding))
            .ok()
    }
}

/// Build and sign a header for content already sealed with `key`.
pub fn seal_header<K: AsRef<[u8]>>(
    meta: DocMeta,
    key: &ContentKey,
    recipients: &[(NodeId, K)],
    content_sha256: [u8; 32],
    signer: &Signer,
) -> Result<Statement, EnvelopeError> {
    meta.validate()?;
    if key.suite != signer.suite() {
        return Err(EnvelopeError::Suite(format!(
            "the content key is for the {} suite but the signer signs in the {} suite",
            key.suite,
            signer.suite()
        )));
    }
    let wanted: BTreeSet<_> = meta.recipients().into_iter().collect();
    let have: BTreeSet<_> = recipients.iter().map(|(id, _)| id.clone()).collect();
    if wanted != have {
        return Err(EnvelopeError::WrappedKeysMismatch);
    }
    let wrapped = recipients
        .iter()
        .map(|(id, pk)| key.wrap(meta.doc_id, id, pk.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let header = Header {
        content_len: content_len_for(meta.plain_len()),
        meta,
        content_sha256,
        wrapped,
        suite: key.suite,
        tree: None,
    };
    signer
        .sign(StatementKind::Document, header.encode())
        .map_err(|_| EnvelopeError::Crypto)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::signed::sha256;

    /// A throwaway CA and certificates, made with rcgen, for signing tests.
    pub(crate) struct TestPki {
        pub ca: rustls::pki_types::CertificateDer<'static>,
        issuer_key: rcgen::KeyPair,
        issuer_params: rcgen::CertificateParams,
    }

    impl TestPki {
        pub(crate) fn new() -> TestPki {
            TestPki::for_suite(crate::suite::Suite::Standard)
        }

        /// A CA of a deployment that uses `suite`.
        pub(crate) fn for_suite(suite: crate::suite::Suite) -> TestPki {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::default();
            if let Some(uri) = suite.san_uri() {
                params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
            }
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            let now = OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(10);
            let ca = params.self_signed(&key).unwrap().der().clone();
            TestPki {
                ca,
                issuer_key: key,
                issuer_params: params,
            }
        }

        pub(crate) fn signer(&self, id: &str, role: Role) -> Signer {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut p = rcgen::CertificateParams::default();
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(rcgen::DnType::CommonName, id);
            p.subject_alt_names = vec![
                rcgen::SanType::URI(format!("gongwen:node/{id}").try_into().unwrap()),
                rcgen::SanType::URI(format!("gongwen:role/{role}").try_into().unwrap()),
            ];
            p.extended_key_usages = vec![if role == Role::Hub {
                rcgen::ExtendedKeyUsagePurpose::ServerAuth
            } else {
                rcgen::ExtendedKeyUsagePurpose::ClientAuth
            }];
            if role == Role::Hub {
                p.subject_alt_names
                    .push(rcgen::SanType::DnsName(id.to_string().try_into().unwrap()));
            }
            let now = OffsetDateTime::now_utc();
            p.not_before = now - time::Duration::days(1);
            p.not_after = now + time::Duration::days(5);
            let issuer = rcgen::Issuer::from_params(&self.issuer_params, &self.issuer_key);
            let cert = p.signed_by(&key, &issuer).unwrap().der().clone();
            let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
            Signer::new(&der, cert).unwrap()
        }

        pub(crate) fn checker(&self) -> CertChecker {
            CertChecker::new(&self.ca, None).unwrap()
        }

        /// The CA's own key, PKCS#8 DER.
        pub(crate) fn ca_key_pkcs8(&self) -> Vec<u8> {
            self.issuer_key.serialize_der()
        }

        /// A checker with an empty CRL from this CA, fresh until
        /// `next_update`.
        pub(crate) fn checker_with_crl(&self, next_update: OffsetDateTime) -> CertChecker {
            let params = rcgen::CertificateRevocationListParams {
                this_update: next_update - time::Duration::days(7),
                next_update,
                crl_number: rcgen::SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: vec![],
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            };
            let issuer = rcgen::Issuer::from_params(&self.issuer_params, &self.issuer_key);
            let crl = params.signed_by(&issuer).unwrap();
            let crl = crate::pki::Crl::parse(crl.der(), &self.ca).unwrap();
            CertChecker::new(&self.ca, Some(&crl)).unwrap()
        }
    }

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    struct Sealed {
        header_bytes: Vec<u8>,
        content: Vec<u8>,
    }

    pub(crate) fn meta(files: &[(&str, &[u8])], to: &[&str]) -> DocMeta {
        DocMeta {
            doc_id: DocId::generate(),
            sender: id("prov-gov"),
            to: to.iter().map(|s| id(s)).collect(),
            cc: vec![],
            doc_number: "黑政发〔2026〕12号".into(),
            doc_type: "通知".into(),
            title: "关于做好冬季安全生产工作的通知".into(),
            urgency: Urgency::Urgent,
            deadline: Some(Deadline::At(1_800_000_000)),
            created_ms: 1_700_000_000_000,
            operator: Operator {
                name: "张三".into(),
                phone: "0451-12345678".into(),
            },
            note: String::new(),
            files: files
                .iter()
                .enumerate()
                .map(|(i, (name, data))| FileEntry {
                    name: (*name).into(),
                    kind: if i == 0 {
                        FileKind::Main
                    } else {
                        FileKind::Attachment
                    },
                    size: data.len() as u64,
                    sha256: sha256(data),
                })
                .collect(),
            links: Default::default(),
            elements: Default::default(),
        }
    }

    fn seal(
        signer: &Signer,
        meta: DocMeta,
        data: &[u8],
        recipients: &[(NodeId, impl AsRef<[u8]>)],
    ) -> Sealed {
        let key = ContentKey::generate(signer.suite()).unwrap();
        let mut sealer = ContentSealer::new(&key, meta.doc_id, data.len() as u64).unwrap();
        let mut content = Vec::new();
        let mut rest = data;
        loop {
            let n = rest.len().min(CHUNK_LEN);
            let mut chunk = rest[..n].to_vec();
            rest = &rest[n..];
            sealer.seal_chunk(&mut chunk).unwrap();
            content.extend_from_slice(&chunk);
            if sealer.is_finished() {
                break;
            }
        }
        let digest = signer.suite().digest(&content);
        let st = seal_header(meta, &key, recipients, digest, signer).unwrap();
        Sealed {
            header_bytes: st.encode(),
            content,
        }
    }

    /// What a recipient does: parse, verify, check the content digest,
    /// unwrap, decrypt, check file digests.
    fn open(
        s: &Sealed,
        me: &NodeId,
        key: &EncryptionKey,
        checker: &CertChecker,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let key = EncryptionKey::from_secret_bytes(&key.secret_bytes())?;
        open_with(s, me, &DocumentKey::X25519(key), checker)
    }

    /// [`open`] with a recipient's key of either suite.
    fn open_with(
        s: &Sealed,
        me: &NodeId,
        key: &DocumentKey,
        checker: &CertChecker,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let h = SealedHeader::parse(&s.header_bytes)?;
        h.verify(Some(checker), OffsetDateTime::now_utc())?;
        if s.content.len() as u64 != h.header.content_len {
            return Err(EnvelopeError::ContentLength {
                expected: h.header.content_len,
                got: s.content.len() as u64,
            });
        }
        let suite = h.header.suite;
        if suite.digest(&s.content) != h.header.content_sha256 {
            return Err(EnvelopeError::ContentDigest);
        }
        let ck = key.unwrap(&h.header, me)?;
        let mut opener = ContentOpener::new(&ck, &h.header)?;
        let mut out = Vec::new();
        let mut pos = 0;
        while !opener.is_finished() {
            let n = opener.next_chunk_len();
            let mut chunk = s.content[pos..pos + n].to_vec();
            pos += n;
            let p = opener.open_chunk(&mut chunk)?;
            out.extend_from_slice(&chunk[..p]);
        }
        let mut at = 0usize;
        for f in &h.header.meta.files {
            let end = at + f.size as usize;
            if suite.digest(&out[at..end]) != f.sha256 {
                return Err(EnvelopeError::FileDigest(f.name.clone()));
            }
            at = end;
        }
        Ok(out)
    }

    /// A whole GM document: SM2-signed header, SM3 digests, SM4-GCM chunks
    /// over more than one chunk, the content key wrapped with SM2 for each
    /// recipient; a changed byte anywhere, the wrong recipient key, or a
    /// standard deployment's checker refuse it.
    #[test]
    fn a_gm_document_seals_and_opens_and_refuses_every_change() {
        let pki = TestPki::for_suite(Suite::Gm);
        let (sender, _) = crate::signed::tests::gm(&pki.signer("prov-gov", Role::Node));
        let (harbin, daqing) = (crate::gm::Sm2Key::generate(), crate::gm::Sm2Key::generate());
        let data: Vec<u8> = (0..CHUNK_LEN * 2 + 77)
            .map(|i| (i * 13 % 256) as u8)
            .collect();
        let (main, att) = data.split_at(1000);
        let mut m = meta(
            &[("正文.txt", main), ("附件.xlsx", att)],
            &["harbin-gov", "daqing-gov"],
        );
        for (f, bytes) in m.files.iter_mut().zip([main, att]) {
            f.sha256 = crate::gm::sm3(bytes);
        }
        let s = seal(
            &sender,
            m,
            &data,
            &[
                (id("harbin-gov"), harbin.public()),
                (id("daqing-gov"), daqing.public()),
            ],
        );
        let parsed = SealedHeader::parse(&s.header_bytes).unwrap();
        assert_eq!(parsed.header.suite, Suite::Gm);
        assert_eq!(parsed.header.content_sha256, crate::gm::sm3(&s.content));
        let checker = pki.checker();
        for (me, key) in [("harbin-gov", &harbin), ("daqing-gov", &daqing)] {
            assert_eq!(
                open_with(&s, &id(me), &DocumentKey::Sm2(key.clone()), &checker).unwrap(),
                data
            );
        }
        // Another unit's key does not open harbin-gov's wrapped key.
        assert_eq!(
            open_with(
                &s,
                &id("harbin-gov"),
                &DocumentKey::Sm2(daqing.clone()),
                &checker
            ),
            Err(EnvelopeError::KeyUnwrap)
        );
        // One changed byte of the content: its digest no longer holds; with
        // the digest made to match, the chunk fails authentication.
        let mut t = Sealed {
            header_bytes: s.header_bytes.clone(),
            content: s.content.clone(),
        };
        t.content[SEALED_CHUNK_LEN as usize + 5] ^= 1;
        assert_eq!(
            open_with(
                &t,
                &id("harbin-gov"),
                &DocumentKey::Sm2(harbin.clone()),
                &checker
            ),
            Err(EnvelopeError::ContentDigest)
        );
        let key = ContentKey::unwrap_sm2(&parsed.header, &id("harbin-gov"), &harbin).unwrap();
        let mut opener = ContentOpener::new(&key, &parsed.header).unwrap();
        let mut first = t.content[..SEALED_CHUNK_LEN as usize].to_vec();
        opener.open_chunk(&mut first).unwrap();
        let mut second =
            t.content[SEALED_CHUNK_LEN as usize..2 * SEALED_CHUNK_LEN as usize].to_vec();
        assert_eq!(
            opener.open_chunk(&mut second),
            Err(EnvelopeError::ChunkAuth(1))
        );
        // A standard deployment refuses it, saying why.
        assert!(matches!(
            open_with(
                &s,
                &id("harbin-gov"),
                &DocumentKey::Sm2(harbin.clone()),
                &TestPki::new().checker()
            ),
            Err(EnvelopeError::Suite(_))
        ));
        // A standard content key cannot be sealed under a GM signer.
        let wrong = ContentKey::generate(Suite::Standard).unwrap();
        let m = meta(&[("正文.txt", b"x")], &["harbin-gov"]);
        assert!(matches!(
            seal_header(
                m,
                &wrong,
                &[(id("harbin-gov"), harbin.public())],
                [0; 32],
                &sender
            ),
            Err(EnvelopeError::Suite(_))
        ));
    }

    #[test]
    fn a_forward_holds_only_with_the_original_signed_and_its_files_unchanged() {
        let pki = TestPki::new();
        let prov = pki.signer("prov-gov", Role::Node);
        let harbin = pki.signer("harbin-gov", Role::Node);
        let k = *EncryptionKey::generate().unwrap().public();
        let files: &[(&str, &[u8])] = &[("正文.txt", b"original text")];
        let original = seal(
            &prov,
            meta(files, &["harbin-gov"]),
            b"original text",
            &[(id("harbin-gov"), k)],
        );
        let forward = |files: &[(&str, &[u8])], original: Vec<u8>| {
            let mut m = meta(files, &["hulan-gov"]);
            m.sender = id("harbin-gov");
            m.links.forwards = Some(original);
            let s = seal(&harbin, m, b"x", &[(id("hulan-gov"), k)]);
            SealedHeader::parse(&s.header_bytes)
                .unwrap()
                .verify(Some(&pki.checker()), OffsetDateTime::now_utc())
        };
        assert!(forward(files, original.header_bytes.clone()).is_ok());
        // Other files than the original's.
        let e = forward(
            &[("正文.txt", b"changed text")],
            original.header_bytes.clone(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not the original's"), "{e}");
        // An original whose signature was altered.
        let mut altered = original.header_bytes.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            forward(files, altered),
            Err(EnvelopeError::Forwarded(_))
        ));
    }

    #[test]
    fn a_sealer_started_at_a_later_chunk_continues_with_the_same_ciphertext() {
        let key = ContentKey::generate(Suite::Standard).unwrap();
        let doc_id = DocId::generate();
        let plain: Vec<u8> = (0..(CHUNK_LEN * 3 + 1000))
            .map(|i| (i % 251) as u8)
            .collect();
        let seal_from = |index: usize| {
            let mut s =
                ContentSealer::starting_at(&key, doc_id, plain.len() as u64, index as u64).unwrap();
            let mut out = Vec::new();
            for c in plain[index * CHUNK_LEN..].chunks(CHUNK_LEN) {
                let mut c = c.to_vec();
                s.seal_chunk(&mut c).unwrap();
                out.extend(c);
            }
            assert!(s.is_finished());
            out
        };
        let whole = seal_from(0);
        let mut fresh = ContentSealer::new(&key, doc_id, plain.len() as u64).unwrap();
        let mut first = plain[..CHUNK_LEN].to_vec();
        fresh.seal_chunk(&mut first).unwrap();
        assert_eq!(&whole[..first.len()], first.as_slice());
        for index in 1..=3 {
            assert_eq!(
                seal_from(index),
                whole[index * (CHUNK_LEN + TAG_LEN)..],
                "from chunk {index}"
            );
        }
        assert!(ContentSealer::starting_at(&key, doc_id, plain.len() as u64, 5).is_err());
    }

    #[test]
    fn a_signer_is_not_judged_once_the_crl_is_stale_and_that_is_not_the_documents_fault() {
        let pki = TestPki::new();
        let prov = pki.signer("prov-gov", Role::Node);
        let now = OffsetDateTime::now_utc();
        let checker = pki.checker_with_crl(now + time::Duration::days(1));
        let k = EncryptionKey::generate().unwrap();
        let s = seal(
            &prov,
            meta(&[("正文.txt", b"x")], &["harbin-gov"]),
            b"x",
            &[(id("harbin-gov"), *k.public())],
        );
        let h = SealedHeader::parse(&s.header_bytes).unwrap();
        assert!(h.verify(Some(&checker), now).is_ok());
        // Two days on the CRL is stale: the pass remembered above does not
        // carry over, and the refusal says the signer cannot be judged now.
        let later = now + time::Duration::days(2);
        let e = h.verify(Some(&checker), later).unwrap_err();
        assert!(matches!(e, EnvelopeError::SignerUnjudged(_)), "{e:?}");
        assert!(e.is_transient());
        assert!(e.to_string().contains("revocation list"), "{e}");
        let receipt = crate::receipt::Receipt {
            doc_id: h.meta().doc_id,
            kind: crate::receipt::ReceiptKind::Delivered,
            recipient: id("prov-gov"),
            issuer: id("prov-gov"),
            doc_digest: h.digest(),
            time_ms: 1_700_000_000_000,
            by: String::new(),
            reason: String::new(),
            seals: Vec::new(),
        };
        let bytes = receipt.sign(&prov).unwrap().encode();
        assert!(crate::receipt::Receipt::verify(&bytes, Some(&checker), now).is_ok());
        let e = crate::receipt::Receipt::verify(&bytes, Some(&checker), later).unwrap_err();
        assert!(e.is_transient(), "{e:?}");
        // Other failures stay final.
        let other = TestPki::new().checker();
        assert!(!h.verify(Some(&other), now).unwrap_err().is_transient());
    }

    #[test]
    fn a_remembered_certificate_check_does_not_outlive_the_certificate_or_a_clock_set_back() {
        let pki = TestPki::new();
        let signer = pki.signer("harbin-gov", Role::Node);
        let cert = signer.cert().as_ref();
        let checker = pki.checker();
        let now = OffsetDateTime::now_utc();
        assert!(checker.check(cert, now).is_ok());
        assert!(checker.check(cert, now).is_ok(), "the remembered pass");
        // The certificate is valid from a day ago for five days.
        assert!(
            checker.check(cert, now + time::Duration::days(6)).is_err(),
            "a pass remembered from before expiry must not outlive it"
        );
        assert!(
            checker.check(cert, now - time::Duration::days(2)).is_err(),
            "a clock set back before the pass checks again"
        );
        let forged = pki.signer("harbin-gov", Role::Node);
        let other = TestPki::new().checker();
        assert!(other.check(forged.cert().as_ref(), now).is_err());
    }

    #[test]
    fn a_deadline_is_a_moment_or_a_span_the_hub_turns_into_one() {
        let pki = TestPki::new();
        let sender = pki.signer("prov-gov", Role::Node);
        let k = EncryptionKey::generate().unwrap();
        for deadline in [
            None,
            Some(Deadline::At(1_800_000_000)),
            Some(Deadline::Within(3 * 86_400)),
        ] {
            let mut m = meta(&[("a.txt", b"x")], &["harbin-gov"]);
            m.deadline = deadline;
            let s = seal(&sender, m, b"x", &[(id("harbin-gov"), *k.public())]);
            let h = SealedHeader::parse(&s.header_bytes).unwrap();
            assert_eq!(h.meta().deadline, deadline);
        }
        let accepted_ms = 1_700_000_000_999;
        assert_eq!(Deadline::At(5).resolve(accepted_ms), 5);
        assert_eq!(
            Deadline::Within(60).resolve(accepted_ms),
            1_700_000_060,
            "a span counts from the hub's acceptance"
        );
        assert_eq!(Deadline::Within(u64::MAX).resolve(accepted_ms), i64::MAX);
    }

    #[test]
    fn one_recipient_round_trip() {
        let pki = TestPki::new();
        let sender = pki.signer("prov-gov", Role::Node);
        let k = EncryptionKey::generate().unwrap();
        let data = b"\xe7\xac\xac\xe4\xb8\x80\xe6\x9d\xa1 ...".to_vec();
        let s = seal(
            &sender,
            meta(&[("正文.txt", &data)], &["harbin-gov"]),
            &data,
            &[(id("harbin-gov"), *k.public())],
        );
        assert_eq!(
            open(&s, &id("harbin-gov"), &k, &pki.checker()).unwrap(),
            data
        );
    }

    #[test]
    fn many_recipients_and_several_chunks_round_trip_and_non_recipients_cannot_open() {
        let pki = TestPki::new();
        let sender = pki.signer("prov-gov", Role::Node);
        let ids: Vec<String> = (0..20).map(|i| format!("unit-{i:02}")).collect();
        let keys: Vec<EncryptionKey> = ids
            .iter()
            .map(|_| EncryptionKey::generate().unwrap())
            .collect();
        let main: Vec<u8> = (0..CHUNK_LEN * 2 + 17).map(|i| (i % 251) as u8).collect();
        let att = vec![7u8; 1000];
        let mut all = main.clone();
        all.extend_from_slice(&att);
        let recips: Vec<(NodeId, [u8; 32])> = ids
            .iter()
            .zip(&keys)
            .map(|(i, k)| (id(i), *k.public()))
            .collect();
        let to: Vec<&str> = ids.iter().map(String::as_str).collect();
        let s = seal(
            &sender,
            meta(&[("正文.pdf", &main), ("附件1.xlsx", &att)], &to),
            &all,
            &recips,
        );
        for (i, k) in ids.iter().zip(&keys) {
            assert_eq!(open(&s, &id(i), k, &pki.checker()).unwrap(), all);
        }
        let outsider = EncryptionKey::generate().unwrap();
        assert_eq!(
            open(&s, &id("daqing-gov"), &outsider, &pki.checker()),
            Err(EnvelopeError::NotARecipient(id("daqing-gov")))
        );
        // A recipient's id with someone else's key cannot open it either.
        assert_eq!(
            open(&s, &id("unit-00"), &outsider, &pki.checker()),
            Err(EnvelopeError::KeyUnwrap)
        );
    }

    #[test]
    fn an_empty_file_still_has_one_authenticated_chunk() {
        let pki = TestPki::new();
        let sender = pki.signer("prov-gov", Role::Node);
        let k = EncryptionKey::generate().unwrap();
        let s = seal(
            &sender,
            meta(&[("空.txt", b"")], &["harbin-gov"]),
            b"",
            &[(id("harbin-gov"), *k.public())],
        );
        assert_eq!(s.content.len(), TAG_LEN);
        assert_eq!(
            open(&s, &id("harbin-gov"), &k, &pki.checker()).unwrap(),
            b""
        );
    }

    fn sealed_fixture() -> (TestPki, Sealed, EncryptionKey) {
        let pki = TestPki::new();
        let sender = pki.signer("prov-gov", Role::Node);
        let k = EncryptionKey::generate().unwrap();
        let data: Vec<u8> = (0..CHUNK_LEN + 100).map(|i| (i * 7 % 256) as u8).collect();
        let s = seal(
            &sender,
            meta(&[("正文.doc", &data)], &["harbin-gov"]),
            &data,
            &[(id("harbin-gov"), *k.public())],
        );
        (pki, s, k)
    }

    #[test]
    fn flipping_any_byte_of_the_header_statement_is_detected() {
        let (pki, s, k) = sealed_fixture();
        let st = Statement::decode(&s.header_bytes, StatementKind::Document).unwrap();
        let body_start = 4 + 1 + 4;
        let body_end = body_start + st.body.len();
        let sig_start = s.header_bytes.len() - st.signature.len();
        for i in 0..s.header_bytes.len() {
            let mut t = Sealed {
                header_bytes: s.header_bytes.clone(),
                content: s.content.clone(),
            };
            t.header_bytes[i] ^= 0x01;
            let e = open(&t, &id("harbin-gov"), &k, &pki.checker())
                .expect_err(&format!("flip at {i} went unnoticed"));
            if (body_start..body_end).contains(&i) {
                // Metadata or wrapped keys: either no longer parse, or the
                // signature fails.
                assert!(
                    matches!(
                        e,
                        EnvelopeError::BadSignature
                            | EnvelopeError::HeaderMalformed(_)
                            | EnvelopeError::Meta(_)
                            | EnvelopeError::WrappedKeysMismatch
                            | EnvelopeError::ContentLength { .. }
                            | EnvelopeError::NotARecipient(_)
                            | EnvelopeError::Statement(_)
                    ),
                    "flip at {i}: {e:?}"
                );
            } else if i >= sig_start {
                assert!(
                    matches!(e, EnvelopeError::BadSignature | EnvelopeError::Statement(_)),
                    "flip at {i}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn a_document_of_the_other_suite_is_refused_with_the_reason() {
        let pki = TestPki::new();
        let (gm, _) = crate::signed::tests::gm(&pki.signer("prov-gov", Role::Node));
        let k = crate::gm::Sm2Key::generate();
        let s = seal(
            &gm,
            meta(&[("正文.txt", b"x")], &["harbin-gov"]),
            b"x",
            &[(id("harbin-gov"), k.public())],
        );
        match open_with(
            &s,
            &id("harbin-gov"),
            &DocumentKey::Sm2(k.clone()),
            &pki.checker(),
        ) {
            Err(EnvelopeError::Suite(why)) => {
                assert!(
                    why.contains("this deployment uses the standard suite"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_changed_wrapped_key_fails_the_signature() {
        let (pki, s, k) = sealed_fixture();
        let st = Statement::decode(&s.header_bytes, StatementKind::Document).unwrap();
        let mut h = Header::decode(&st.body, st.suite()).unwrap();
        h.wrapped[0].sealed[0] ^= 1;
        let forged = Statement {
            body: h.encode(),
            ..st
        };
        let t = Sealed {
            header_bytes: forged.encode(),
            content: s.content.clone(),
        };
        assert_eq!(
            open(&t, &id("harbin-gov"), &k, &pki.checker()),
            Err(EnvelopeError::BadSignature)
        );
    }

    #[test]
    fn flipping_a_ciphertext_byte_is_detected_by_digest_and_by_chunk_tag() {
        let (pki, s, k) = sealed_fixture();
        for i in [
            0,
            5,
            CHUNK_LEN,
            CHUNK_LEN + TAG_LEN + 3,
            s.content.len() - 1,
        ] {
            let mut t = Sealed {
                header_bytes: s.header_bytes.clone(),
                content: s.content.clone(),
            };
            t.content[i] ^= 0x80;
            assert_eq!(
                open(&t, &id("harbin-gov"), &k, &pki.checker()),
                Err(EnvelopeError::ContentDigest)
            );
        }
        // Past the digest (a hub that also forged it could not sign it):
        // the chunk tag alone still catches the change.
        let h = SealedHeader::parse(&s.header_bytes).unwrap();
        let ck = ContentKey::unwrap(&h.header, &id("harbin-gov"), &k).unwrap();
        let mut opener = ContentOpener::new(&ck, &h.header).unwrap();
        let mut first = s.content[..CHUNK_LEN + TAG_LEN].to_vec();
        first[10] ^= 1;
        assert_eq!(
            opener.open_chunk(&mut first),
            Err(EnvelopeError::ChunkAuth(0))
        );
    }

    #[test]
    fn truncated_or_reordered_content_fails() {
        let (_pki, s, k) = sealed_fixture();
        let h = SealedHeader::parse(&s.header_bytes).unwrap();
        let ck = ContentKey::unwrap(&h.header, &id("harbin-gov"), &k).unwrap();
        // Present the last chunk first: its nonce says "last", index 1.
        let mut opener = ContentOpener::new(&ck, &h.header).unwrap();
        let mut last = s.content[CHUNK_LEN + TAG_LEN..].to_vec();
        assert!(opener.open_chunk(&mut last).is_err());
    }

    #[test]
    fn an_opener_resumed_at_a_chunk_decrypts_the_rest_and_no_further() {
        let (_pki, s, k) = sealed_fixture();
        let h = SealedHeader::parse(&s.header_bytes).unwrap();
        let ck = ContentKey::unwrap(&h.header, &id("harbin-gov"), &k).unwrap();
        assert!(
            s.content.len() > CHUNK_LEN + TAG_LEN,
            "the fixture has two chunks"
        );
        let mut opener = ContentOpener::at_chunk(&ck, &h.header, 1).unwrap();
        assert_eq!(
            opener.next_chunk_len(),
            s.content.len() - (CHUNK_LEN + TAG_LEN)
        );
        let mut last = s.content[CHUNK_LEN + TAG_LEN..].to_vec();
        opener.open_chunk(&mut last).unwrap();
        assert!(opener.is_finished());
        // Chunk 1 presented as chunk 0 fails; an index past the end is refused.
        let mut first = ContentOpener::at_chunk(&ck, &h.header, 0).unwrap();
        let mut last = s.content[CHUNK_LEN + TAG_LEN..].to_vec();
        assert!(first.open_chunk(&mut last).is_err());
        assert!(ContentOpener::at_chunk(&ck, &h.header, 2).is_err());
    }

    #[test]
    fn a_document_signed_by_another_node_than_its_sender_is_refused() {
        let pki = TestPki::new();
        let impostor = pki.signer("daqing-gov", Role::Node);
        let k = EncryptionKey::generate().unwrap();
        let data = b"x".to_vec();
        // meta() says the sender is prov-gov; daqing-gov signs it.
        let s = seal(
            &impostor,
            meta(&[("a.txt", &data)], &["harbin-gov"]),
            &data,
            &[(id("harbin-gov"), *k.public())],
        );
        assert_eq!(
            open(&s, &id("harbin-gov"), &k, &pki.checker()),
            Err(EnvelopeError::SignerNotSender {
                claimed: id("prov-gov"),
                signer: id("daqing-gov")
            })
        );
    }

    #[test]
    fn a_signer_from_another_ca_is_refused() {
        let pki = TestPki::new();
        let rogue = TestPki::new();
        let sender = rogue.signer("prov-gov", Role::Node);
        let k = EncryptionKey::generate().unwrap();
        let s = seal(
            &sender,
            meta(&[("a.txt", b"x")], &["harbin-gov"]),
            b"x",
            &[(id("harbin-gov"), *k.public())],
        );
        assert!(matches!(
            open(&s, &id("harbin-gov"), &k, &pki.checker()),
            Err(EnvelopeError::SignerCertificate(_))
        ));
    }

    #[test]
    fn classified_secrecy_is_refused() {
        assert!(check_secrecy("none").is_ok());
        assert!(check_secrecy("").is_ok());
        for level in ["秘密", "机密", "绝密", "secret", "confidential"] {
            assert_eq!(
                check_secrecy(level),
                Err(MetaError::Classified(level.into()))
            );
        }
        // And a header carrying any secrecy code other than none does not parse.
        let (_, s, _) = sealed_fixture();
        let st = Statement::decode(&s.header_bytes, StatementKind::Document).unwrap();
        let h = Header::decode(&st.body, st.suite()).unwrap();
        let mut body = Vec::new();
        h.meta.encode(&mut Writer(&mut body));
        // The secrecy byte sits right before the file count (u16) and entries.
        let files_len: usize = h
            .meta
            .files
            .iter()
            .map(|f| 2 + f.name.len() + 1 + 8 + 32)
            .sum();
        let pos = body.len() - files_len - 2 - 1;
        assert_eq!(body[pos], 0);
        let mut tampered = st.body.clone();
        tampered[pos] = 2;
        assert!(matches!(
            Header::decode(&tampered, Suite::Standard),
            Err(EnvelopeError::Meta(MetaError::Classified(_)))
        ));
    }

    #[test]
    fn metadata_rules_name_what_to_fix() {
        let mut m = meta(&[("a.txt", b"x")], &["harbin-gov"]);
        assert!(m.validate().is_ok());
        m.title = "长".repeat(161);
        assert_eq!(m.validate(), Err(MetaError::TitleTooLong(161)));
        let mut m = meta(&[("a.txt", b"x")], &["prov-gov"]);
        assert!(matches!(m.validate(), Err(MetaError::SelfAddressed(_))));
        m.to = vec![];
        assert_eq!(m.validate(), Err(MetaError::NoRecipient));
        for bad in [
            "../etc/passwd",
            "a/b",
            "..",
            "a\0b",
            "x\ny",
            &"名".repeat(100),
            "正文\u{202e}fdp.exe",
            "a\u{2066}b.txt",
            "\u{200f}报告.docx",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        let e = check_file_name("正文\u{202e}fdp.exe")
            .unwrap_err()
            .to_string();
        assert!(e.contains("text-direction"), "{e}");
        assert!(check_file_name("关于做好冬季安全生产工作的通知（定稿）.docx").is_ok());
    }

    #[test]
    fn key_bindings_verify_only_for_the_node_that_signed_them() {
        let pki = TestPki::new();
        let harbin = pki.signer("harbin-gov", Role::Node);
        let k = EncryptionKey::generate().unwrap();
        let b = KeyBinding {
            node: id("harbin-gov"),
            public: *k.public(),
            created_ms: 1,
        };
        let bytes = b.sign(&harbin).unwrap().encode();
        assert_eq!(
            KeyBinding::verify(&bytes, Some(&pki.checker()), OffsetDateTime::now_utc()).unwrap(),
            b
        );
        // A binding for daqing-gov signed by harbin-gov (a hub substituting keys).
        let forged = KeyBinding {
            node: id("daqing-gov"),
            ..b.clone()
        }
        .sign(&harbin)
        .unwrap()
        .encode();
        assert!(matches!(
            KeyBinding::verify(&forged, Some(&pki.checker()), OffsetDateTime::now_utc()),
            Err(EnvelopeError::SignerNotSender { .. })
        ));
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 80] ^= 1;
        assert!(
            KeyBinding::verify(&flipped, Some(&pki.checker()), OffsetDateTime::now_utc()).is_err()
        );
        // The secret survives a round trip through its bytes.
        let again = EncryptionKey::from_secret_bytes(&k.secret_bytes()).unwrap();
        assert_eq!(again.public(), k.public());
    }

    /// Both kinds of published key read as one: an X25519 binding and an
    /// SM2 binding give the key to seal to and its suite; a binding for
    /// another unit, a changed byte, or a certificate of another CA do not.
    #[test]
    fn a_reach_key_is_read_from_either_kind_of_binding() {
        use crate::signed::Sm2Binding;
        let now = OffsetDateTime::now_utc();
        let pki = TestPki::for_suite(Suite::Gm);
        let harbin = pki.signer("harbin-gov", Role::Node);
        let (sign, enc) = (crate::gm::Sm2Key::generate(), crate::gm::Sm2Key::generate());
        let gm = Sm2Binding::for_keys(id("harbin-gov"), &sign, &enc, "1234567812345678", 7)
            .sign(&harbin)
            .unwrap();
        let reach = ReachKey::verify(&gm, Some(&pki.checker()), now).unwrap();
        assert_eq!(
            reach,
            ReachKey {
                node: id("harbin-gov"),
                suite: Suite::Gm,
                public: enc.public(),
                created_ms: 7,
            }
        );
        let named = |b: &[u8]| {
            ReachKey::statement_of(b)
                .and_then(|st| CertIdentity::from_der(&st.cert).ok().map(|c| c.id))
        };
        assert_eq!(named(&gm), Some(id("harbin-gov")));
        let x = EncryptionKey::generate().unwrap();
        let standard = KeyBinding {
            node: id("harbin-gov"),
            public: *x.public(),
            created_ms: 8,
        }
        .sign(&harbin)
        .unwrap()
        .encode();
        let reach = ReachKey::verify(&standard, Some(&pki.checker()), now).unwrap();
        assert_eq!(
            (reach.suite, reach.public),
            (Suite::Standard, x.public().to_vec())
        );
        assert_eq!(named(&standard), Some(id("harbin-gov")));
        // Keys bound to daqing-gov by harbin-gov's certificate key.
        let forged = Sm2Binding::for_keys(id("daqing-gov"), &sign, &enc, "1234567812345678", 7)
            .sign(&harbin)
            .unwrap();
        assert!(ReachKey::verify(&forged, Some(&pki.checker()), now).is_err());
        let mut flipped = gm.clone();
        let n = flipped.len();
        flipped[n - 80] ^= 1;
        assert!(ReachKey::verify(&flipped, Some(&pki.checker()), now).is_err());
        assert!(ReachKey::verify(&gm, Some(&TestPki::new().checker()), now).is_err());
        // The matching private keys open what is sealed to them, and refuse
        // a document of the other suite.
        let keys = [DocumentKey::Sm2(enc), DocumentKey::X25519(x)];
        assert_eq!(
            keys[0].public(),
            ReachKey::verify(&gm, None, now).unwrap().public
        );
        assert_eq!(keys[1].suite(), Suite::Standard);
    }
}
