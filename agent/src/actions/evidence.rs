//! Evidence a third party can check without gongwen: for one document,
//! every signed statement this unit holds (the document's header and each
//! receipt) as the exact signed bytes, the DER signature and the signer's
//! certificate, with the CA certificate, the CRL, and a `verify.sh` that
//! checks it all with openssl:
//!
//! ```text
//! document.signed  document.sig.der  document.signer.pem
//! receipt-1-accepted-hub.signed  …  receipt-3-acknowledged-harbin-gov.signed …
//! ca.crt  crl.pem  manifest.json  verify.sh
//! original.signed  original.sig.der  original.signer.pem   (a forward, 转发)
//! ca-jilin.crt  trust-jilin-1.signed  trust-jilin-1.sig.der  trust-jilin-1.ca.crt …
//! ```
//!
//! With federation, a signer of another domain (the recipient of a document
//! sent across, or its sender) is certified by that domain's CA:
//! `ca-DOMAIN.crt`, vouched for by the chain of federation statements from
//! `ca.crt` (`trust-DOMAIN-N`), each of which `verify.sh` checks.
//!
//! The document's files, as this unit holds them, are in `files/`, and
//! `verify.sh` checks each against the digest in the signed header.
//!
//! For a forwarded document the first issuer's statement is there too, and
//! `verify.sh` checks its signature and that the forward carries it.
//!
//! In a GM deployment each statement is SM2-signed: beside it are the SM2
//! public key (`NAME.sm2.pub.pem`) and the statement binding that key to
//! the signer's certificate key (`NAME.sm2-binding`, `NAME.sm2-binding.sig.der`),
//! and `verify.sh` checks the chain certificate → binding → SM2 signature
//! (`openssl dgst -sm3 -verify … -sigopt distid:…`), and receipts cite the
//! SM3 of the document.

use std::path::{Path, PathBuf};

use gongwen_common::DocId;
use gongwen_common::pki::serial_hex;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::signed::{Sm2Binding, Statement, StatementKind};
use gongwen_common::suite::Suite;
use gongwen_common::timefmt::rfc3339;
use serde::Serialize;
use time::OffsetDateTime;

use crate::unit::identity::Identity;
use crate::unit::store::Store;

#[derive(Debug, Serialize)]
struct ManifestEntry {
    name: String,
    kind: String,
    signer: String,
    /// The document digest the statement cites (its own, for the header).
    doc_digest: String,
    time: Option<String>,
}

#[derive(Debug, Serialize)]
struct Manifest {
    doc_id: DocId,
    /// The GB/T 9704 elements the signed header states (签发人, 成文日期 …).
    #[serde(skip_serializing_if = "gongwen_common::elements::Elements::is_empty")]
    elements: gongwen_common::elements::Elements,
    statements: Vec<ManifestEntry>,
}

fn pem(label: &str, der: &[u8]) -> String {
    ::pem::encode(&::pem::Pem::new(label, der.to_vec()))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(dir.join(name), bytes)
        .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))
}

/// The statements written so far into a bundle: the manifest's entries,
/// and each name with the SM2 distinguishing id it was signed with (GM).
struct Bundle<'a> {
    out: &'a Path,
    manifest: Manifest,
    names: Vec<(String, Option<String>)>,
}

impl Bundle<'_> {
    /// Write one signed statement: what was signed, the signature, the
    /// signer's certificate (and, GM, the SM2 key that signed and the
    /// statement binding it to the certificate's key, so openssl can follow
    /// the chain).
    fn put(
        &mut self,
        name: String,
        st: &Statement,
        kind: &str,
        signer: String,
        doc_digest: String,
        time: Option<String>,
    ) -> Result<(), String> {
        let out = self.out;
        write(out, &format!("{name}.signed"), &st.signed_message())?;
        write(out, &format!("{name}.sig.der"), &st.signature)?;
        write(
            out,
            &format!("{name}.signer.pem"),
            pem("CERTIFICATE", &st.cert).as_bytes(),
        )?;
        let distid = match &st.sm2_binding {
            None => None,
            Some(b) => Some(put_sm2_binding(out, &name, b)?),
        };
        self.manifest.statements.push(ManifestEntry {
            name: name.clone(),
            kind: kind.into(),
            signer,
            doc_digest,
            time,
        });
        self.names.push((name, distid));
        Ok(())
    }
}

/// A GM statement's SM2 key and the binding that ties it to its signer's
/// certificate; the distinguishing id it signs with.
fn put_sm2_binding(out: &Path, name: &str, binding: &[u8]) -> Result<String, String> {
    let bound = Statement::decode(binding, StatementKind::Sm2KeyBinding)
        .map_err(|e| format!("{name}: its SM2 binding: {e}"))?;
    let keys =
        Sm2Binding::decode(&bound.body).map_err(|e| format!("{name}: its SM2 binding: {e}"))?;
    let public = gongwen_common::gm::public_pem(&keys.sign_public)
        .map_err(|e| format!("{name}: its SM2 key: {e}"))?;
    write(out, &format!("{name}.sm2.pub.pem"), public.as_bytes())?;
    write(out, &format!("{name}.sm2-binding"), &bound.signed_message())?;
    write(
        out,
        &format!("{name}.sm2-binding.sig.der"),
        &bound.signature,
    )?;
    Ok(keys.distid)
}

fn signer_of(st: &Statement) -> String {
    gongwen_common::pki::CertIdentity::from_der(&st.cert)
        .map(|c| c.id.to_string())
        .unwrap_or_default()
}

/// Every receipt this unit holds about `doc_id`: its recipients', and its
/// own (delivered, and the clerk's answer) for a document it received.
fn receipts_of(store: &Store, doc_id: DocId) -> Result<Vec<Vec<u8>>, String> {
    let mut receipts: Vec<Vec<u8>> = store
        .receipts(doc_id)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    if let Some((_, mine)) = store.received(doc_id).map_err(|e| e.to_string())? {
        receipts.push(mine);
    }
    if let Some(answer) = store.answer(doc_id).map_err(|e| e.to_string())? {
        receipts.push(answer);
    }
    Ok(receipts)
}

/// Write the evidence for `doc_id` into `out`. Blocking.
pub fn write_bundle(
    me: &Identity,
    store: &Store,
    doc_id: DocId,
    out: &Path,
) -> Result<PathBuf, String> {
    let header = store
        .header(doc_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no document {doc_id} was sent or received by this unit"))?;
    let sealed =
        gongwen_common::envelope::SealedHeader::parse(&header).map_err(|e| e.to_string())?;
    let doc = sealed.statement.clone();
    let receipts = receipts_of(store, doc_id)?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut bundle = Bundle {
        out,
        manifest: Manifest {
            doc_id,
            elements: sealed.meta().elements.clone(),
            statements: Vec::new(),
        },
        names: Vec::new(),
    };
    let digest = serial_hex(&doc.digest());
    bundle.put(
        "document".into(),
        &doc,
        "document",
        signer_of(&doc),
        digest,
        None,
    )?;
    // A document for many units (the tree form): this unit's key and the
    // path from it to the root the sender signed.
    let proof = sealed.key_proof();
    if let Some(p) = &proof {
        write(out, "key.leaf", &p.leaf)?;
        for (i, h) in p.path.iter().enumerate() {
            write(out, &format!("key.path.{i:02}"), h)?;
        }
    }
    // A forward (转发): the first issuer's signed header, checked the same.
    let forwarded = sealed
        .meta()
        .links
        .forwards
        .clone()
        .and_then(|o| Statement::decode(&o, StatementKind::Document).ok());
    if let Some(original) = &forwarded {
        let digest = serial_hex(&original.digest());
        let kind = "original (forwarded)";
        bundle.put(
            "original".into(),
            original,
            kind,
            signer_of(original),
            digest,
            None,
        )?;
    }
    put_receipts(&mut bundle, &receipts)?;
    let files = copy_files(me, &header, out)?;
    let seals = put_seals(me, &sealed, out)?;
    let proof = proof.map(|p| (p.index, p.size));
    finish(me, bundle, doc.suite(), files, proof, seals)?;
    Ok(out.to_owned())
}

/// 验章 again over the OFD files copied into `files/`, now: each seal's
/// verdict in `seals/seals.json`, and for each readable seal what openssl
/// needs to re-check it alone — the signed `TBS_Sign`, the signer's SM2
/// signature and certificate, and `Signature.xml` with the `dataHash` it
/// must digest to. Returns how many seals have those inputs.
fn put_seals(
    me: &Identity,
    sealed: &gongwen_common::envelope::SealedHeader,
    out: &Path,
) -> Result<usize, String> {
    use crate::actions::seals;
    let trust =
        seals::trust_from(&me.config().seals).unwrap_or_else(|_| gongwen_ofd::SealTrust::none());
    let dir = out.join("seals");
    let mut verdicts = Vec::new();
    let mut n = 0;
    for f in &sealed.meta().files {
        let file = out.join("files").join(&f.name);
        if !seals::is_ofd(&f.name) || !file.is_file() {
            continue;
        }
        let (finding, inputs) = seals::examine(&file, &f.name, &trust, me.clock().now());
        for (verdict, input) in finding.seals.iter().zip(inputs) {
            verdicts.push(crate::rules::metadata::FileSeal {
                file: f.name.clone(),
                verdict: verdict.clone(),
            });
            let Some(i) = input else { continue };
            n += 1;
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let base = format!("seal-{n}");
            write(&dir, &format!("{base}.tbs.der"), &i.tbs_sign)?;
            write(&dir, &format!("{base}.sig.der"), &i.signature_der)?;
            write(
                &dir,
                &format!("{base}.signer.pem"),
                pem("CERTIFICATE", &i.signer_cert).as_bytes(),
            )?;
            write(&dir, &format!("{base}.Signature.xml"), &i.signature_xml)?;
            write(
                &dir,
                &format!("{base}.datahash.hex"),
                serial_hex(&i.data_hash).to_lowercase().as_bytes(),
            )?;
        }
    }
    if !verdicts.is_empty() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let text = serde_json::to_vec_pretty(&verdicts).map_err(|e| e.to_string())?;
        write(&dir, "seals.json", &text)?;
    }
    Ok(n)
}

/// The receipts, in the order things happened: by kind, then time.
fn put_receipts(bundle: &mut Bundle<'_>, receipts: &[Vec<u8>]) -> Result<(), String> {
    let mut order: Vec<(Receipt, Statement)> = receipts
        .iter()
        .filter_map(|b| Receipt::verify(b, None, OffsetDateTime::now_utc()).ok())
        .collect();
    let rank = |k: ReceiptKind| k as u8;
    order.sort_by_key(|(r, _)| (rank(r.kind), r.time_ms, r.recipient.to_string()));
    for (i, (r, st)) in order.iter().enumerate() {
        let name = format!("receipt-{}-{}-{}", i + 1, r.kind.as_str(), r.recipient);
        let time = OffsetDateTime::from_unix_timestamp(r.time_ms.div_euclid(1000))
            .map(rfc3339)
            .ok();
        let (kind, issuer, digest) = (
            r.kind.as_str(),
            r.issuer.to_string(),
            serial_hex(&r.doc_digest),
        );
        bundle.put(name, st, kind, issuer, digest, time)?;
    }
    Ok(())
}

/// The CA, the CRL in force, the manifest and the script that checks it
/// all with openssl.
fn finish(
    me: &Identity,
    bundle: Bundle<'_>,
    suite: gongwen_common::suite::Suite,
    files: usize,
    proof: Option<(u32, u64)>,
    seals: usize,
) -> Result<(), String> {
    let out = bundle.out;
    write(
        out,
        "ca.crt",
        pem("CERTIFICATE", me.trust().ca()).as_bytes(),
    )?;
    let has_crl = match std::fs::read(me.folders().crl()) {
        Ok(der) => {
            write(out, "crl.pem", pem("X509 CRL", &der).as_bytes())?;
            true
        }
        Err(_) => false,
    };
    let domains = put_domains(me, out)?;
    let text = serde_json::to_vec_pretty(&bundle.manifest).map_err(|e| e.to_string())?;
    write(out, "manifest.json", &text)?;
    let mut script = verify_script(&bundle.names, has_crl, suite, files, proof);
    if !domains.is_empty() {
        script = script.replace(TRUST_MARK, &domains_script(&domains));
    }
    let mut script = script.replace(TRUST_MARK, "");
    if seals > 0 {
        script = script.replace(SEALS_MARK, SEALS_SCRIPT);
    }
    let script = script.replace(SEALS_MARK, "");
    write(out, "verify.sh", script.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(
            out.join("verify.sh"),
            std::fs::Permissions::from_mode(0o755),
        );
    }
    Ok(())
}

/// Where the checks of the other domains' CAs go in `verify.sh`.
const TRUST_MARK: &str = "TRUST_MARK";
/// Where the seals' checks go.
const SEALS_MARK: &str = "SEALS_MARK\n";
/// Each electronic seal (GB/T 38540), with openssl alone: the signer's
/// SM2 signature over `TBS_Sign` (by the key of the certificate the seal
/// names), the `dataHash` it signed inside it, and that hash the SM3 of
/// `Signature.xml` (which lists every sealed file's SM3).
const SEALS_SCRIPT: &str = r#"for t in seals/seal-*.tbs.der; do
  [ -e "$t" ] || continue
  b=${t%.tbs.der}; n=${b#seals/}
  openssl x509 -in "$b.signer.pem" -pubkey -noout > "$b.pub.pem" 2>/dev/null || { bad "seal         $n (unreadable signer certificate)"; continue; }
  if openssl dgst -sm3 -verify "$b.pub.pem" -sigopt distid:1234567812345678 -signature "$b.sig.der" "$t" >/dev/null 2>&1; then
    ok "seal         $n: SM2 signature over TBS_Sign"
  else
    bad "seal         $n: SM2 signature over TBS_Sign"
  fi
  h=$(cat "$b.datahash.hex")
  case "$(od -An -v -tx1 "$t" | tr -d ' 
')" in
    *"$h"*) ok "seal         $n: signs dataHash $h" ;;
    *) bad "seal         $n: TBS_Sign does not carry dataHash" ;;
  esac
  d=$(openssl dgst -sm3 -r "$b.Signature.xml" | cut -d' ' -f1)
  [ "$d" = "$h" ] && ok "seal         $n: dataHash is SM3 of Signature.xml" || bad "seal         $n: Signature.xml does not digest to dataHash"
done
"#;

/// The other domains this unit trusts: each one's CA (`ca-DOMAIN.crt`) and
/// the chain of statements from our CA to it (`trust-DOMAIN-N.signed`,
/// `.sig.der`, and `.ca.crt`, the CA that statement names), so a signer of
/// another domain is checked back to `ca.crt` with openssl. The domains
/// and their chain lengths.
fn put_domains(me: &Identity, out: &Path) -> Result<Vec<(String, usize)>, String> {
    let mut done = Vec::new();
    for (domain, ca, chain) in me.trust().other_domains() {
        write(
            out,
            &format!("ca-{domain}.crt"),
            pem("CERTIFICATE", &ca).as_bytes(),
        )?;
        for (i, bytes) in chain.0.iter().enumerate() {
            let st = Statement::decode(bytes, StatementKind::Federation)
                .map_err(|e| format!("the trust of {domain}: {e}"))?;
            let named = gongwen_common::federation::FederationStatement::verify(bytes, &st.cert)
                .map_err(|e| format!("the trust of {domain}: {e}"))?;
            let base = format!("trust-{domain}-{}", i + 1);
            write(out, &format!("{base}.signed"), &st.signed_message())?;
            write(out, &format!("{base}.sig.der"), &st.signature)?;
            write(
                out,
                &format!("{base}.ca.crt"),
                pem("CERTIFICATE", &named.peer_ca).as_bytes(),
            )?;
        }
        done.push((domain.to_string(), chain.0.len()));
    }
    Ok(done)
}

/// `verify.sh`'s checks of each other domain's chain: every statement
/// signed by the CA before it (`ca.crt` first), naming the next CA (its
/// DER inside the signed bytes), the last naming `ca-DOMAIN.crt`.
fn domains_script(domains: &[(String, usize)]) -> String {
    let mut s = String::from(
        r#"# Each other domain's CA, vouched for by a chain of statements from ca.crt.
chain() {
  d=$1; n=$2; signer=ca.crt; i=1
  while [ $i -le $n ]; do
    t="trust-$d-$i"
    openssl x509 -in "$signer" -pubkey -noout > "$t.pub.pem" 2>/dev/null
    if openssl dgst -sha256 -verify "$t.pub.pem" -signature "$t.sig.der" "$t.signed" >/dev/null 2>&1; then
      ok "vouched      $t (signed by $signer)"
    else
      bad "vouched      $t (not signed by $signer)"
    fi
    rm -f "$t.pub.pem"
    named=$(openssl x509 -in "$t.ca.crt" -outform DER 2>/dev/null | od -An -v -tx1 | tr -d ' 
')
    case "$(od -An -v -tx1 "$t.signed" | tr -d ' 
')" in
      *"$named"*) [ -n "$named" ] || bad "vouched      $t (unreadable CA)" ;;
      *) bad "vouched      $t (names another CA than $t.ca.crt)" ;;
    esac
    signer="$t.ca.crt"; i=$((i + 1))
  done
  if cmp -s "$signer" "ca-$d.crt"; then ok "domain CA    $d"; else bad "domain CA    $d (not the CA its chain names)"; fi
}
"#,
    );
    for (d, n) in domains {
        s.push_str(&format!(
            "chain '{d}' {n}
"
        ));
    }
    s
}

/// The document's files as this unit holds them (what it sent, or what it
/// received, or what its sender recalled), copied into `out/files/`. How
/// many; none when the folder is gone.
fn copy_files(me: &Identity, header: &[u8], out: &Path) -> Result<usize, String> {
    let Ok(sealed) = gongwen_common::envelope::SealedHeader::parse(header) else {
        return Ok(0);
    };
    let meta = sealed.meta();
    let f = me.folders();
    let doc = meta.doc_id.to_string();
    // A sender of another domain has its folder as this unit names it
    // (`harbin-gov@heilongjiang`), not as its header does.
    let sender = meta.sender.as_str();
    let named = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n == sender || n.starts_with(&format!("{sender}@"))
            })
            .map(|e| e.path().join(&doc))
            .collect()
    };
    let Some(folder) = std::iter::once(f.sent.join(&doc))
        .chain(named(&f.inbox))
        .chain(named(&f.recalled))
        .find(|d| d.is_dir())
    else {
        return Ok(0);
    };
    let dir = out.join("files");
    let mut n = 0;
    for entry in &meta.files {
        let from = folder.join(&entry.name);
        if !from.is_file() {
            continue;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // A copy, not a link: whatever is done to the bundle must not
        // touch the unit's own document.
        let to = dir.join(&entry.name);
        std::fs::copy(&from, &to).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
        n += 1;
    }
    Ok(n)
}

/// `names`: each statement, with the SM2 distinguishing id its signature
/// was made with in a GM deployment. `files`: how many of the document's
/// files are in `files/`, each checked against the digest the signed
/// header gives it.
fn verify_script(
    names: &[(String, Option<String>)],
    has_crl: bool,
    suite: Suite,
    files: usize,
    proof: Option<(u32, u64)>,
) -> String {
    let about = match suite {
        Suite::Standard => {
            r#"# Checks this evidence with openssl alone: each statement's ECDSA P-256 /
# SHA-256 signature, each signer's certificate against the CA, and that
# every receipt cites this exact document (the SHA-256 of document.signed).
# Exit status 0 when everything holds."#
        }
        Suite::Gm => {
            r#"# Checks this evidence with openssl alone (OpenSSL 3, 国密): each
# statement's SM2 signature with SM3 and its distinguishing id, made by the
# SM2 key that the signer's certificate key bound to it (ECDSA P-256 /
# SHA-256 over NAME.sm2-binding); each signer's certificate against
# the CA; and that every receipt cites this exact document (the SM3 of
# document.signed). Exit status 0 when everything holds."#
        }
    };
    let mut s = format!("#!/bin/sh\n{about}\n");
    if files > 0 {
        s.push_str(&format!(
            "# files/ holds {files} of the document's files, each checked against the\n# digest the document's signed header gives it.\n"
        ));
    }
    s.push_str(
        r#"set -u
cd "$(dirname "$0")" || exit 2
fail=0
ok() { echo "OK    $*"; }
bad() { echo "FAIL  $*"; fail=1; }
# The signer's certificate key into NAME.pub.pem; false if unreadable.
cert_key() {
  openssl x509 -in "$1.signer.pem" -pubkey -noout > "$1.pub.pem" 2>/dev/null || { bad "$1: unreadable certificate"; return 1; }
}
issued() {
  if openssl verify -CAfile ca.crt "$1.signer.pem" >/dev/null 2>&1; then
    ok "certificate  $1"
  else
    by=""
    for c in ca-*.crt; do
      [ -e "$c" ] || continue
      if openssl verify -CAfile "$c" "$1.signer.pem" >/dev/null 2>&1; then by="${c#ca-}"; by="${by%.crt}"; fi
    done
    if [ -n "$by" ]; then
      ok "certificate  $1 (issued by the CA of $by, which ca.crt vouches for above)"
    else
      bad "certificate  $1 (not issued by this CA)"
    fi
  fi
  rm -f "$1.pub.pem"
}
TRUST_MARK
check() {
  cert_key "$1" || return
  if openssl dgst -sha256 -verify "$1.pub.pem" -signature "$1.sig.der" "$1.signed" >/dev/null 2>&1; then
    ok "signature    $1"
  else
    bad "signature    $1"
  fi
  issued "$1"
}
check_gm() {
  cert_key "$1" || return
  if openssl dgst -sha256 -verify "$1.pub.pem" -signature "$1.sm2-binding.sig.der" "$1.sm2-binding" >/dev/null 2>&1; then
    ok "binding      $1 (the certificate key binds the SM2 key)"
  else
    bad "binding      $1"
  fi
  point=$(openssl pkey -pubin -in "$1.sm2.pub.pem" -outform DER 2>/dev/null | od -An -v -tx1 | tr -d ' \n' | tail -c 130)
  case "$(od -An -v -tx1 "$1.sm2-binding" | tr -d ' \n')" in
    *"$point"*) [ ${#point} -eq 130 ] && ok "bound key    $1" || bad "bound key    $1 (unreadable SM2 key)" ;;
    *) bad "bound key    $1 (the SM2 key is not the one bound)" ;;
  esac
  if openssl dgst -sm3 -verify "$1.sm2.pub.pem" -signature "$1.sig.der" -sigopt "distid:$2" "$1.signed" >/dev/null 2>&1; then
    ok "signature    $1 (SM2)"
  else
    bad "signature    $1"
  fi
  issued "$1"
}
"#,
    );
    for (n, distid) in names {
        match distid {
            None => s.push_str(&format!("check '{n}'\n")),
            Some(d) => s.push_str(&format!("check_gm '{n}' '{}'\n", d.replace('\'', ""))),
        }
    }
    if let Some((index, size)) = proof {
        // The signed header names no keys, only the root of a tree over
        // them: this unit's key (key.leaf) and its path lead there.
        s.push_str(gongwen_common::keytree::VERIFY_SH_FUNCTION);
        s.push_str(&format!(
            r#"root=$(keytree_root DIGEST key.leaf {index} {size} key.path.* | od -An -v -tx1 | tr -d ' 
')
case "$(od -An -v -tx1 document.signed | tr -d ' 
')" in
  *"$root"*) [ ${{#root}} -eq 64 ] && ok "key          this unit's key is one of the {size} the sender signed" || bad "key          (its path leads nowhere)" ;;
  *) bad "key          (not one the sender signed)" ;;
esac
"#
        )
        .replace(
            "DIGEST",
            match suite {
                Suite::Standard => "sha256",
                Suite::Gm => "sm3",
            },
        ));
    }
    s.push_str(
        r#"if [ -e original.signed ]; then
  # A forward: its signed header carries the first issuer's signature.
  sig=$(od -An -v -tx1 original.sig.der | tr -d ' \n')
  case "$(od -An -v -tx1 document.signed | tr -d ' \n')" in
    *"$sig"*) ok "carries      original" ;;
    *) bad "carries      original (the forward carries another)" ;;
  esac
fi
signed=$(od -An -v -tx1 document.signed | tr -d ' \n')
for f in files/*; do
  [ -f "$f" ] || continue
  d=$(openssl dgst -DIGEST -r "$f" | cut -d' ' -f1)
  case "$signed" in
    *"$d"*) [ ${#d} -eq 64 ] && ok "file         ${f#files/}" || bad "file         ${f#files/} (cannot hash it)" ;;
    *) bad "file         ${f#files/} (not the file the document's signature covers)" ;;
  esac
done
digest=$(openssl dgst -DIGEST -r document.signed | cut -d' ' -f1)
for r in receipt-*.signed; do
  [ -e "$r" ] || continue
  hex=$(od -An -v -tx1 "$r" | tr -d ' \n')
  case "$hex" in
    *"$digest"*) ok "cites        ${r%.signed}" ;;
    *) bad "cites        ${r%.signed} (names another document)" ;;
  esac
done
"#
        .replace(
            "-DIGEST",
            match suite {
                Suite::Standard => "-sha256",
                Suite::Gm => "-sm3",
            },
        )
        .as_str(),
    );
    if has_crl {
        s.push_str(
            r#"# Revocation today (a certificate revoked after signing still made a valid signature then):
for c in *.signer.pem; do
  openssl verify -CAfile ca.crt "$c" >/dev/null 2>&1 || continue
  openssl verify -crl_check -CAfile ca.crt -CRLfile crl.pem "$c" >/dev/null 2>&1 || echo "NOTE  ${c%.signer.pem}: signer's certificate is revoked or the CRL is stale now"
done
"#,
        );
    }
    s.push_str(SEALS_MARK);
    s.push_str(
        r#"if [ $fail -eq 0 ]; then echo "evidence verified"; else echo "evidence DOES NOT verify"; fi
exit $fail
"#,
    );
    s
}
