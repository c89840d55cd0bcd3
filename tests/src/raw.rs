//! A minimal agent built from the library's parts, for tests that must
//! control the protocol step by step (e.g. resend an upload whose
//! `accepted` never arrived).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use gongwen_common::envelope::{
    CHUNK_LEN, ContentKey, ContentSealer, DocMeta, FileEntry, FileKind, Operator, ReachKey,
    Urgency, seal_header,
};
use gongwen_common::pki::{self, CertChecker};
use gongwen_common::signed::Signer;
use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
use gongwen_common::tls::agent_client_config;
use gongwen_common::wire::{Message, PROTOCOL_VERSION};
use gongwen_common::{DocId, NodeId};
use time::OffsetDateTime;

/// A connection to the hub as one unit, by hand.
#[derive(Debug)]
pub struct RawAgent {
    pub conn: quinn::Connection,
    pub signer: Signer,
    checker: Arc<CertChecker>,
    _endpoint: quinn::Endpoint,
    _control: (quinn::SendStream, quinn::RecvStream),
}

/// A sealed document held in memory.
#[derive(Debug, Clone)]
pub struct SealedDoc {
    pub doc_id: DocId,
    pub header: Vec<u8>,
    pub content: Vec<u8>,
}

/// A unit's QUIC client configuration and its signer, from `dir`.
fn unit_config(dir: &Path, id: &str) -> (quinn::ClientConfig, Signer, CertChecker) {
    let chain = pki::load_certs(&dir.join(format!("{id}.crt"))).unwrap();
    let key = pki::load_private_key(&dir.join(format!("{id}.key"))).unwrap();
    let ca = pki::load_certs(&dir.join("ca.crt")).unwrap().remove(0);
    let mut signer = Signer::new(&key, chain[0].clone()).unwrap();
    let suite = gongwen_common::suite::Suite::of_ca(ca.as_ref()).unwrap();
    if suite == gongwen_common::suite::Suite::Gm {
        // The SM2 keys `gongwen-certs issue` wrote beside the key.
        let files = gongwen_common::config::Sm2Files::beside(&dir.join(format!("{id}.key")));
        signer = gongwen_common::material::load_sm2(dir, &files, signer)
            .unwrap()
            .0;
    }
    let config = agent_client_config(chain, key, &ca, gongwen_common::clock::system()).unwrap();
    (config, signer, CertChecker::new(&ca, None).unwrap())
}

/// Connections of one unit that finish the TLS handshake and then say
/// nothing (no hello): what a misbehaving unit can open before it is
/// admitted.
pub async fn connect_without_hello(
    dir: &Path,
    id: &str,
    hub: SocketAddr,
    n: usize,
) -> (quinn::Endpoint, Vec<quinn::Connection>) {
    let (config, _, _) = unit_config(dir, id);
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut conns = Vec::new();
    for _ in 0..n {
        let conn = endpoint
            .connect_with(config.clone(), hub, "hub")
            .unwrap()
            .await
            .unwrap();
        conns.push(conn);
    }
    (endpoint, conns)
}

impl RawAgent {
    /// Connect as the unit whose certificate is in `dir` (`ID.crt`, `ID.key`, `ca.crt`).
    pub async fn connect(dir: &Path, id: &str, hub: SocketAddr) -> RawAgent {
        let (config, signer, checker) = unit_config(dir, id);
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint
            .connect_with(config, hub, "hub")
            .unwrap()
            .await
            .unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        write_message(
            &mut send,
            &Message::Hello {
                version: PROTOCOL_VERSION,
                software: "raw".into(),
            },
        )
        .await
        .unwrap();
        let welcome = read_message(&mut recv, READ_TIMEOUT).await.unwrap();
        assert!(matches!(welcome, Message::Welcome { .. }), "{welcome:?}");
        RawAgent {
            conn,
            signer,
            checker: Arc::new(checker),
            _endpoint: endpoint,
            _control: (send, recv),
        }
    }

    pub async fn request(&self, msg: &Message) -> Message {
        gongwen_common::stream::request(&self.conn, msg, READ_TIMEOUT)
            .await
            .unwrap()
    }

    /// Seal `body` as one file for `to`, fetching their keys from the hub.
    pub async fn seal(&self, doc_id: DocId, to: &[&str], name: &str, body: &[u8]) -> SealedDoc {
        let me = self.signer.identity().id.to_string();
        self.seal_as(&me, doc_id, to, name, body).await
    }

    /// Like [`RawAgent::seal`], but naming `sender` in the metadata (still
    /// signed with this connection's key).
    pub async fn seal_as(
        &self,
        sender: &str,
        doc_id: DocId,
        to: &[&str],
        name: &str,
        body: &[u8],
    ) -> SealedDoc {
        let reply = self
            .request(&Message::Lookup {
                names: to.iter().map(|s| s.to_string()).collect(),
            })
            .await;
        let Message::Directory { bindings, .. } = reply else {
            panic!("{reply:?}")
        };
        let keys: Vec<(NodeId, Vec<u8>)> = bindings
            .iter()
            .map(|b| {
                // A unit elsewhere (`unit@domain`) is certified by its own
                // domain's CA: its binding is taken as signed, and sealed
                // for under the name the sender gave.
                let st = ReachKey::statement_of(b).unwrap();
                let ours =
                    CertChecker::check(&self.checker, &st.cert, OffsetDateTime::now_utc()).is_ok();
                let checker = ours.then_some(self.checker.as_ref());
                let r = ReachKey::verify(b, checker, OffsetDateTime::now_utc()).unwrap();
                let node = match to.iter().find(|t| t.starts_with(&format!("{}@", r.node))) {
                    Some(remote) if !ours => NodeId::parse_address(remote).unwrap(),
                    _ => r.node,
                };
                (node, r.public)
            })
            .collect();
        let suite = self.signer.suite();
        let key = ContentKey::generate(self.signer.suite()).unwrap();
        let mut sealer = ContentSealer::new(&key, doc_id, body.len() as u64).unwrap();
        let mut content = Vec::new();
        let mut rest = body;
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
        let meta = DocMeta {
            doc_id,
            sender: NodeId::parse(sender).unwrap(),
            to: to
                .iter()
                .map(|s| NodeId::parse_address(s).unwrap())
                .collect(),
            cc: vec![],
            doc_number: String::new(),
            doc_type: "函".into(),
            title: name.into(),
            urgency: Urgency::Normal,
            deadline: None,
            created_ms: 0,
            operator: Operator::default(),
            note: String::new(),
            files: vec![FileEntry {
                name: name.into(),
                kind: FileKind::Main,
                size: body.len() as u64,
                sha256: suite.digest(body),
            }],
            links: Default::default(),
            elements: Default::default(),
        };
        let st = seal_header(meta, &key, &keys, suite.digest(&content), &self.signer).unwrap();
        SealedDoc {
            doc_id,
            header: st.encode(),
            content,
        }
    }

    /// Answer the hub's pushes with Ok, except the first `refuse` receipt
    /// notices, answered with an error; every receipt taken goes to `receipts`.
    pub fn serve_pushes(
        &self,
        refuse: usize,
        receipts: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    ) {
        let conn = self.conn.clone();
        tokio::spawn(async move {
            let mut refuse = refuse;
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let Ok(msg) = read_message(&mut recv, READ_TIMEOUT).await else {
                    continue;
                };
                let reply = match msg {
                    Message::ReceiptNotice { .. } if refuse > 0 => {
                        refuse -= 1;
                        Message::Error {
                            code: gongwen_common::wire::ErrorCode::Internal,
                            message: "busy".into(),
                        }
                    }
                    Message::ReceiptNotice { receipt } => {
                        let _ = receipts.send(receipt);
                        Message::Ok
                    }
                    _ => Message::Ok,
                };
                let _ = write_message(&mut send, &reply).await;
                let _ = send.finish();
            }
        });
    }

    /// Upload a sealed document; returns the hub's final answer.
    pub async fn upload(&self, doc: &SealedDoc) -> Message {
        let (mut send, mut recv) = self.conn.open_bi().await.unwrap();
        write_message(
            &mut send,
            &Message::UploadBegin {
                doc_id: doc.doc_id,
                header: doc.header.clone(),
                content_len: doc.content.len() as u64,
            },
        )
        .await
        .unwrap();
        match read_message(&mut recv, READ_TIMEOUT).await.unwrap() {
            Message::UploadFrom { offset } => {
                send.write_all(&doc.content[offset as usize..])
                    .await
                    .unwrap();
                send.finish().unwrap();
                read_message(&mut recv, READ_TIMEOUT).await.unwrap()
            }
            other => other,
        }
    }
}
