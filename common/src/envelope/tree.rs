//! The tree form of a sealed header: a notice to N units in O(N) bytes.
//!
//! In the list form every recipient receives every recipient's wrapped
//! key (and the whole `to`/`cc`): a 1.5 KB notice to 1,000 units put
//! 98.6 MB on the wire, and at about 9,000 recipients the header no longer
//! fits a frame. In the tree form the sender signs, in place of the keys
//! and the lists, their count and the root of a [`KeyTree`] over one leaf
//! per recipient (its role, id and wrapped key, in id order). The header
//! then travels in one of three forms:
//!
//! ```text
//! plain  statement                                   (a forward's original)
//! full   "GWF1" statement  count:u32  leaf*          (sender and hub: everything)
//! copy   "GWC1" statement  leaf  index:u32  n:u8 hash*n   (one recipient's)
//! leaf   role:u8 (0 主送, 1 抄送)  id:str  [enc:32, standard]  sealed:bytes
//! ```
//!
//! A recipient holds its copy: the signature makes the root the sender's,
//! and the path makes its leaf one of the leaves under that root, so its
//! key is the sender's sealing for it, exactly as in the list form. The
//! hub holds the full form (it must know every recipient) and cuts a copy
//! for each ([`Recipients::copy_for`]).

use std::collections::HashMap;

use super::{
    ContentKey, DocMeta, EnvelopeError, Header, MAX_RECIPIENTS, MetaError, SealedHeader,
    WrappedKey, content_len_for,
};
use crate::codec::{CodecError, Reader, Writer};
use crate::id::NodeId;
use crate::keytree::{Hash, KeyTree, leaf_hash, root_from_path};
use crate::signed::{Signer, Statement, StatementKind};
use crate::suite::Suite;

/// The count of wrapped keys that says "the tree form follows".
pub(super) const TREE_MARK: u16 = 0xFFFF;
const FULL_MAGIC: &[u8; 4] = b"GWF1";
const COPY_MAGIC: &[u8; 4] = b"GWC1";
/// Largest leaf: a role, an id and an SM2 ciphertext, with room.
const MAX_LEAF: usize = 1024;
/// Longest path: a tree of [`MAX_RECIPIENTS`] leaves is 16 levels deep.
const MAX_PATH: usize = 32;
/// Most names the sender addressed, kept for display.
const MAX_ADDRESSED: usize = 256;

/// Recipients above which an agent seals a document in the tree form: a
/// smaller list costs little either way and opens with agents of before
/// protocol version 7 too.
pub const TREE_ABOVE: usize = 64;

/// What the signed header carries in place of the keys and the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeInfo {
    /// Recipients in 主送 and in 抄送.
    pub to_count: u32,
    pub cc_count: u32,
    /// The root of the tree over the leaves, in the suite's digest.
    pub root: Hash,
    /// The names the sender addressed (units and groups), for display: a
    /// recipient that holds only its own leaf can still say "主送: 各县".
    pub addressed_to: Vec<String>,
    pub addressed_cc: Vec<String>,
}

impl TreeInfo {
    /// Recipients in all.
    pub fn size(&self) -> usize {
        self.to_count as usize + self.cc_count as usize
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.to_count);
        w.u32(self.cc_count);
        w.raw(&self.root);
        for names in [&self.addressed_to, &self.addressed_cc] {
            w.u16(names.len().min(MAX_ADDRESSED) as u16);
            for n in names.iter().take(MAX_ADDRESSED) {
                w.str(n);
            }
        }
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<TreeInfo, EnvelopeError> {
        let to_count = r.u32()?;
        let cc_count = r.u32()?;
        let root = r.array()?;
        let mut names = || -> Result<Vec<String>, CodecError> {
            let n = r.u16()? as usize;
            if n > MAX_ADDRESSED {
                return Err(CodecError::TooLong {
                    len: n,
                    max: MAX_ADDRESSED,
                });
            }
            (0..n).map(|_| r.string()).collect()
        };
        let addressed_to = names()?;
        let addressed_cc = names()?;
        Ok(TreeInfo {
            to_count,
            cc_count,
            root,
            addressed_to,
            addressed_cc,
        })
    }

    /// The signed metadata of a tree-form header: no lists (the leaves
    /// carry them), at least one 主送, within the bounds, and the rest as
    /// any header's.
    pub(super) fn check_meta(&self, meta: &DocMeta) -> Result<(), EnvelopeError> {
        if !meta.to.is_empty() || !meta.cc.is_empty() {
            return Err(EnvelopeError::WrappedKeysMismatch);
        }
        if self.to_count == 0 {
            return Err(MetaError::NoRecipient.into());
        }
        if self.size() > MAX_RECIPIENTS {
            return Err(MetaError::TooManyRecipients.into());
        }
        Ok(meta.validate_except_presence()?)
    }
}

/// The form a header's bytes came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// A signed statement alone (every list-form header; a tree-form one
    /// as a forward carries it, without keys).
    Plain,
    /// A tree-form statement with every leaf.
    Full,
    /// A tree-form statement with one recipient's leaf and its path.
    Copy { index: u32, path: Vec<Hash> },
}

/// One recipient's leaf: its role and its wrapped key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leaf {
    cc: bool,
    key: WrappedKey,
}

impl Leaf {
    fn encode(&self, suite: Suite) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        w.u8(u8::from(self.cc));
        self.key.encode(&mut w, suite);
        out
    }

    fn decode(bytes: &[u8], suite: Suite) -> Result<Leaf, EnvelopeError> {
        let mut r = Reader::new(bytes);
        let cc = match r.u8()? {
            0 => false,
            1 => true,
            other => {
                return Err(CodecError::BadCode {
                    what: "recipient role",
                    code: other.into(),
                }
                .into());
            }
        };
        let key = WrappedKey::decode(&mut r, suite)?;
        r.finish()?;
        Ok(Leaf { cc, key })
    }
}

/// Parse a header in any form (see [`SealedHeader::parse`]).
pub(super) fn parse(bytes: &[u8]) -> Result<SealedHeader, EnvelopeError> {
    if let Some(rest) = bytes.strip_prefix(FULL_MAGIC) {
        let (statement, leaves) = read_full(rest)?;
        let (statement, header) = plain_parts(&statement)?;
        let (header, _) = complete(header, &leaves)?;
        return Ok(SealedHeader {
            statement,
            header,
            form: Form::Full,
        });
    }
    if let Some(rest) = bytes.strip_prefix(COPY_MAGIC) {
        let mut r = Reader::new(rest);
        let (statement, mut header) = plain_parts(r.bytes(crate::signed::MAX_BODY + 64 * 1024)?)?;
        let leaf_bytes = r.bytes(MAX_LEAF)?.to_vec();
        let index = r.u32()?;
        let n = r.u8()? as usize;
        if n > MAX_PATH {
            return Err(CodecError::TooLong {
                len: n,
                max: MAX_PATH,
            }
            .into());
        }
        let path = (0..n)
            .map(|_| r.array())
            .collect::<Result<Vec<Hash>, _>>()?;
        r.finish()?;
        let info = header
            .tree
            .as_ref()
            .ok_or(EnvelopeError::WrappedKeysMismatch)?;
        let suite = header.suite;
        let leaf = Leaf::decode(&leaf_bytes, suite)?;
        let root = root_from_path(
            suite,
            leaf_hash(suite, &leaf_bytes),
            u64::from(index),
            info.size() as u64,
            &path,
        );
        if root != Some(info.root) {
            return Err(EnvelopeError::WrappedKeysMismatch);
        }
        if leaf.key.recipient == header.meta.sender {
            return Err(MetaError::SelfAddressed(leaf.key.recipient).into());
        }
        if leaf.cc {
            header.meta.cc = vec![leaf.key.recipient.clone()];
        } else {
            header.meta.to = vec![leaf.key.recipient.clone()];
        }
        header.wrapped = vec![leaf.key];
        return Ok(SealedHeader {
            statement,
            header,
            form: Form::Copy { index, path },
        });
    }
    let (statement, header) = plain_parts(bytes)?;
    Ok(SealedHeader {
        statement,
        header,
        form: Form::Plain,
    })
}

fn plain_parts(bytes: &[u8]) -> Result<(Statement, Header), EnvelopeError> {
    let statement = Statement::decode(bytes, StatementKind::Document)?;
    let header = Header::decode(&statement.body, statement.suite())?;
    Ok((statement, header))
}

/// The statement and the leaves of a full form (after its magic).
fn read_full(rest: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), EnvelopeError> {
    let mut r = Reader::new(rest);
    let statement = r.bytes(crate::signed::MAX_BODY + 64 * 1024)?.to_vec();
    let n = r.u32()? as usize;
    if n > MAX_RECIPIENTS {
        return Err(MetaError::TooManyRecipients.into());
    }
    let leaves = (0..n)
        .map(|_| r.bytes(MAX_LEAF).map(<[u8]>::to_vec))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish()?;
    Ok((statement, leaves))
}

/// A tree-form header with its leaves: each in id order, no unit twice,
/// the roles adding up to the signed counts, and the tree over them
/// giving the signed root. Fills in `to`, `cc` and the wrapped keys; the
/// tree, for whoever cuts copies from it.
fn complete(mut header: Header, leaves: &[Vec<u8>]) -> Result<(Header, KeyTree), EnvelopeError> {
    let info = header
        .tree
        .clone()
        .ok_or(EnvelopeError::WrappedKeysMismatch)?;
    if leaves.len() != info.size() {
        return Err(EnvelopeError::WrappedKeysMismatch);
    }
    let suite = header.suite;
    let (mut to, mut cc, mut wrapped) = (Vec::new(), Vec::new(), Vec::new());
    let mut hashes = Vec::with_capacity(leaves.len());
    for bytes in leaves {
        let leaf = Leaf::decode(bytes, suite)?;
        let id = &leaf.key.recipient;
        if let Some(last) = wrapped.last().map(|k: &WrappedKey| &k.recipient)
            && last >= id
        {
            return Err(if last == id {
                MetaError::DuplicateRecipient(id.clone()).into()
            } else {
                EnvelopeError::WrappedKeysMismatch
            });
        }
        if *id == header.meta.sender {
            return Err(MetaError::SelfAddressed(id.clone()).into());
        }
        if leaf.cc { &mut cc } else { &mut to }.push(id.clone());
        hashes.push(leaf_hash(suite, bytes));
        wrapped.push(leaf.key);
    }
    if to.len() != info.to_count as usize || cc.len() != info.cc_count as usize {
        return Err(EnvelopeError::WrappedKeysMismatch);
    }
    let tree = KeyTree::new(suite, hashes).ok_or(EnvelopeError::WrappedKeysMismatch)?;
    if tree.root() != info.root {
        return Err(EnvelopeError::WrappedKeysMismatch);
    }
    header.meta.to = to;
    header.meta.cc = cc;
    header.wrapped = wrapped;
    Ok((header, tree))
}

fn full_bytes(statement: &[u8], leaves: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + statement.len() + leaves.len() * 120);
    out.extend_from_slice(FULL_MAGIC);
    let mut w = Writer(&mut out);
    w.bytes(statement);
    w.u32(leaves.len() as u32);
    for l in leaves {
        w.bytes(l);
    }
    out
}

/// Seal a header in the tree form for content already sealed with `key`:
/// the same checks and keys as [`super::seal_header`], the lists and keys
/// as leaves under a signed root. `addressed` are the names the sender
/// wrote (主送, 抄送), kept for display. Returns the full form.
pub fn seal_tree_header<K: AsRef<[u8]>>(
    meta: DocMeta,
    key: &ContentKey,
    recipients: &[(NodeId, K)],
    content_sha256: [u8; 32],
    signer: &Signer,
    addressed: (Vec<String>, Vec<String>),
) -> Result<Vec<u8>, EnvelopeError> {
    meta.validate()?;
    if key.suite != signer.suite() {
        return Err(EnvelopeError::Suite(format!(
            "the content key is for the {} suite but the signer signs in the {} suite",
            key.suite,
            signer.suite()
        )));
    }
    let in_cc: std::collections::HashSet<&NodeId> = meta.cc.iter().collect();
    let mut keys: Vec<&(NodeId, K)> = recipients.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let wanted: std::collections::BTreeSet<&NodeId> = meta.to.iter().chain(&meta.cc).collect();
    let have: std::collections::BTreeSet<&NodeId> = keys.iter().map(|(id, _)| id).collect();
    if wanted != have || have.len() != keys.len() {
        return Err(EnvelopeError::WrappedKeysMismatch);
    }
    let suite = key.suite;
    let leaves = keys
        .iter()
        .map(|(id, pk)| {
            Ok(Leaf {
                cc: in_cc.contains(id),
                key: key.wrap(meta.doc_id, id, pk.as_ref())?,
            }
            .encode(suite))
        })
        .collect::<Result<Vec<_>, EnvelopeError>>()?;
    let tree = KeyTree::new(suite, leaves.iter().map(|l| leaf_hash(suite, l)).collect())
        .ok_or(EnvelopeError::WrappedKeysMismatch)?;
    let info = TreeInfo {
        to_count: meta.to.len() as u32,
        cc_count: meta.cc.len() as u32,
        root: tree.root(),
        addressed_to: addressed.0,
        addressed_cc: addressed.1,
    };
    let signed_meta = DocMeta {
        to: Vec::new(),
        cc: Vec::new(),
        ..meta
    };
    let header = Header {
        content_len: content_len_for(signed_meta.plain_len()),
        meta: signed_meta,
        content_sha256,
        wrapped: Vec::new(),
        suite,
        tree: Some(info),
    };
    let statement = signer
        .sign(StatementKind::Document, header.encode())
        .map_err(|_| EnvelopeError::Crypto)?;
    Ok(full_bytes(&statement.encode(), &leaves))
}

/// A recipient's proof that the sender signed its key: its leaf (the
/// bytes hashed), its place, the number of leaves, and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProof {
    pub leaf: Vec<u8>,
    pub index: u32,
    pub size: u64,
    pub path: Vec<Hash>,
}

impl SealedHeader {
    /// The proof a copy carries (`None` for the other forms).
    pub fn key_proof(&self) -> Option<KeyProof> {
        let Form::Copy { index, path } = &self.form else {
            return None;
        };
        let key = self.header.wrapped.first()?.clone();
        let cc = self.header.meta.cc.contains(&key.recipient);
        Some(KeyProof {
            leaf: Leaf { cc, key }.encode(self.header.suite),
            index: *index,
            size: self.header.tree.as_ref()?.size() as u64,
            path: path.clone(),
        })
    }
}

/// Whether `bytes` are a header in the full form.
pub fn is_full(bytes: &[u8]) -> bool {
    bytes.starts_with(FULL_MAGIC)
}

/// A full-form header cut into what an upload carries: the statement,
/// and the leaves in order. `None` for any other form.
pub fn split_full(bytes: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    read_full(bytes.strip_prefix(FULL_MAGIC)?).ok()
}

/// A tree-form document's every recipient, ready to cut each its copy: the
/// hub holds one per document in flight, whatever the number of copies.
#[derive(Debug)]
pub struct Recipients {
    statement: Vec<u8>,
    leaves: Vec<Vec<u8>>,
    tree: KeyTree,
    index: HashMap<NodeId, usize>,
}

impl Recipients {
    /// From the statement and the leaves an upload brought (checked as
    /// [`SealedHeader::parse`] checks the full form); the header, complete.
    pub fn new(
        statement: &[u8],
        leaves: Vec<Vec<u8>>,
    ) -> Result<(Recipients, SealedHeader), EnvelopeError> {
        let (parsed, header) = plain_parts(statement)?;
        let (header, tree) = complete(header, &leaves)?;
        let index = header
            .wrapped
            .iter()
            .enumerate()
            .map(|(i, k)| (k.recipient.clone(), i))
            .collect();
        let sealed = SealedHeader {
            statement: parsed,
            header,
            form: Form::Full,
        };
        let recipients = Recipients {
            statement: statement.to_vec(),
            leaves,
            tree,
            index,
        };
        Ok((recipients, sealed))
    }

    /// From the full form's bytes; the header, complete.
    pub fn from_full(bytes: &[u8]) -> Result<(Recipients, SealedHeader), EnvelopeError> {
        let rest = bytes
            .strip_prefix(FULL_MAGIC)
            .ok_or(EnvelopeError::WrappedKeysMismatch)?;
        let (statement, leaves) = read_full(rest)?;
        Recipients::new(&statement, leaves)
    }

    /// The full form's bytes (what the hub stores).
    pub fn full_bytes(&self) -> Vec<u8> {
        full_bytes(&self.statement, &self.leaves)
    }

    /// `id`'s copy: the statement, its leaf and the leaf's path.
    pub fn copy_for(&self, id: &NodeId) -> Option<Vec<u8>> {
        let &i = self.index.get(id)?;
        let path = self.tree.path(i)?;
        let leaf = self.leaves.get(i)?;
        let mut out = Vec::with_capacity(16 + self.statement.len() + leaf.len() + 32 * path.len());
        out.extend_from_slice(COPY_MAGIC);
        let mut w = Writer(&mut out);
        w.bytes(&self.statement);
        w.bytes(leaf);
        w.u32(i as u32);
        w.u8(path.len() as u8);
        for h in &path {
            w.raw(h);
        }
        Some(out)
    }

    /// How many recipients.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::tests::TestPki;
    use crate::envelope::{ContentKey, EncryptionKey};

    /// A document from prov-gov to `n` counties (the last five in 抄送),
    /// sealed in the tree form; the recipients' secret keys.
    fn sealed(n: usize) -> (Vec<u8>, Vec<(NodeId, EncryptionKey)>, TestPki) {
        let pki = TestPki::new();
        let signer = pki.signer("prov-gov", crate::pki::Role::Node);
        let keys: Vec<(NodeId, EncryptionKey)> = (0..n)
            .map(|i| {
                (
                    NodeId::parse(&format!("county-{i:05}")).unwrap(),
                    EncryptionKey::generate().unwrap(),
                )
            })
            .collect();
        let mut meta = crate::envelope::tests::meta(&[("通知.txt", b"notice")], &[]);
        let split = n.saturating_sub(5).max(1);
        meta.to = keys[..split].iter().map(|(id, _)| id.clone()).collect();
        meta.cc = keys[split..].iter().map(|(id, _)| id.clone()).collect();
        let publics: Vec<(NodeId, [u8; 32])> = keys
            .iter()
            .map(|(id, k)| (id.clone(), *k.public()))
            .collect();
        let key = ContentKey::generate(Suite::Standard).unwrap();
        let full = seal_tree_header(
            meta,
            &key,
            &publics,
            [7; 32],
            &signer,
            (vec!["counties".into()], vec!["prov-audit".into()]),
        )
        .unwrap();
        (full, keys, pki)
    }

    #[test]
    fn each_recipient_opens_its_copy_and_the_copy_is_logarithmic() {
        let (full, keys, _pki) = sealed(1000);
        let (recipients, whole) = Recipients::from_full(&full).unwrap();
        assert_eq!(whole.form, Form::Full);
        assert_eq!(whole.header.meta.to.len(), 995);
        assert_eq!(whole.header.meta.cc.len(), 5);
        assert_eq!(whole.header.wrapped.len(), 1000);
        let statement_len = whole.statement_bytes().len();
        assert!(
            statement_len < 2_000,
            "the signed part is {statement_len} bytes"
        );
        for (i, (id, secret)) in keys.iter().enumerate().step_by(97) {
            let copy = recipients.copy_for(id).unwrap();
            assert!(
                copy.len() < statement_len + 500,
                "copy {i}: {} bytes",
                copy.len()
            );
            let mine = SealedHeader::parse(&copy).unwrap();
            mine.verify(None, time::OffsetDateTime::now_utc()).unwrap();
            assert_eq!(mine.digest(), whole.digest(), "receipts cite one digest");
            let cc = i >= 995;
            assert_eq!(mine.header.meta.cc.contains(id), cc);
            assert_eq!(mine.header.meta.to.contains(id), !cc);
            ContentKey::unwrap(&mine.header, id, secret).unwrap();
            let info = mine.header.tree.as_ref().unwrap();
            assert_eq!(info.addressed_to, ["counties"]);
            // The proof, as the evidence bundle writes it, leads to the root.
            let p = mine.key_proof().unwrap();
            assert_eq!(
                root_from_path(
                    Suite::Standard,
                    leaf_hash(Suite::Standard, &p.leaf),
                    u64::from(p.index),
                    p.size,
                    &p.path
                ),
                Some(info.root)
            );
        }
    }

    #[test]
    fn a_changed_recipient_list_or_key_is_refused() {
        let (full, keys, _pki) = sealed(40);
        let (statement, leaves) = split_full(&full).unwrap();
        // A leaf left out, added twice, or swapped with another's.
        for bad in [
            leaves[1..].to_vec(),
            [leaves.clone(), vec![leaves[3].clone()]].concat(),
            {
                let mut l = leaves.clone();
                l.swap(2, 3);
                l
            },
        ] {
            assert!(Recipients::new(&statement, bad).is_err());
        }
        // A key changed in a leaf, or a 抄送 made 主送.
        let mut changed = leaves.clone();
        let last = changed[7].len() - 1;
        changed[7][last] ^= 1;
        assert!(matches!(
            Recipients::new(&statement, changed),
            Err(EnvelopeError::WrappedKeysMismatch)
        ));
        let mut promoted = leaves.clone();
        promoted[39][0] = 0;
        assert!(Recipients::new(&statement, promoted).is_err());
        // A copy cut for one unit, its leaf replaced by another's: refused.
        let (recipients, _) = Recipients::new(&statement, leaves.clone()).unwrap();
        let copy = recipients.copy_for(&keys[4].0).unwrap();
        let other = recipients.copy_for(&keys[5].0).unwrap();
        let mut forged = copy.clone();
        let at = 8 + statement.len();
        let len = leaves[4].len();
        forged[at..at + len].copy_from_slice(&other[at..at + len]);
        assert!(SealedHeader::parse(&copy).is_ok());
        assert!(SealedHeader::parse(&forged).is_err());
    }

    #[test]
    fn a_gm_document_in_the_tree_form_opens_with_sm2_and_sm3() {
        let pki = TestPki::for_suite(Suite::Gm);
        let (signer, _) = crate::signed::tests::gm(&pki.signer("prov-gov", crate::pki::Role::Node));
        let keys: Vec<(NodeId, crate::gm::Sm2Key)> = (0..80)
            .map(|i| {
                (
                    NodeId::parse(&format!("county-{i:05}")).unwrap(),
                    crate::gm::Sm2Key::generate(),
                )
            })
            .collect();
        let mut meta = crate::envelope::tests::meta(&[("通知.txt", b"notice")], &[]);
        meta.to = keys.iter().map(|(id, _)| id.clone()).collect();
        let publics: Vec<(NodeId, Vec<u8>)> = keys
            .iter()
            .map(|(id, k)| (id.clone(), k.public()))
            .collect();
        let key = ContentKey::generate(Suite::Gm).unwrap();
        let full =
            seal_tree_header(meta, &key, &publics, [3; 32], &signer, (vec![], vec![])).unwrap();
        let (recipients, whole) = Recipients::from_full(&full).unwrap();
        assert_eq!(whole.header.suite, Suite::Gm);
        for (id, secret) in keys.iter().step_by(13) {
            let mine = SealedHeader::parse(&recipients.copy_for(id).unwrap()).unwrap();
            mine.verify(Some(&pki.checker()), time::OffsetDateTime::now_utc())
                .unwrap();
            ContentKey::unwrap_sm2(&mine.header, id, secret).unwrap();
        }
    }

    #[test]
    fn a_forward_carries_the_plain_statement_which_parses_without_keys() {
        let (full, _, _pki) = sealed(100);
        let (statement, _) = split_full(&full).unwrap();
        let plain = SealedHeader::parse(&statement).unwrap();
        assert_eq!(plain.form, Form::Plain);
        assert!(plain.header.meta.to.is_empty() && plain.header.wrapped.is_empty());
        assert_eq!(plain.header.tree.as_ref().unwrap().size(), 100);
        plain.verify(None, time::OffsetDateTime::now_utc()).unwrap();
    }
}
