//! Backup and restore of an embedded hub (`gongwen-hub backup`,
//! `gongwen-hub restore`).
//!
//! A backup is taken while the hub serves: the store holds its writers off
//! for a moment (one write transaction, never committed) while the
//! database file and the audit log are copied and the sealed content is
//! hard-linked (it never changes once sealed) into a staging folder inside
//! the data folder — the only place a hub under systemd may write. The
//! command then copies the staging folder to `--out` with a manifest of
//! SHA-256 sums in `sha256sum` format (`sha256sum -c MANIFEST.sha256`
//! checks it too), and removes the staging folder.
//!
//! The manifest is signed with the hub's certificate key
//! (`MANIFEST.sha256.sig`, ECDSA P-256 over its bytes, with the certificate
//! beside it in `MANIFEST.sha256.crt`): sums alone would let whoever can
//! write the backup change a file and its line together. openssl checks it
//! (`openssl dgst -sha256 -verify <(openssl x509 -in MANIFEST.sha256.crt
//! -pubkey -noout) -signature MANIFEST.sha256.sig MANIFEST.sha256`).
//!
//! A restore goes only into an empty data folder, refuses a backup whose
//! manifest is not signed by a hub certificate of this deployment's CA,
//! whose files do not match their sums (or that has files the manifest does
//! not list, or a symbolic link anywhere), and gives the restored store a
//! new generation: agents, seeing it in the welcome, offer again whatever
//! they sent after the backup.
//!
//! A PostgreSQL hub's state is the database's to back up (pg_dump,
//! continuous archiving); the command says so.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};

/// The manifest's name, in `sha256sum` format.
pub const MANIFEST: &str = "MANIFEST.sha256";
/// The hub's signature over the manifest (ECDSA P-256 SHA-256, DER).
pub const SIGNATURE: &str = "MANIFEST.sha256.sig";
/// The certificate of the hub that signed it (PEM).
pub const SIGNER: &str = "MANIFEST.sha256.crt";

/// What signs a backup's manifest: the hub's certificate key.
pub struct ManifestSigner {
    pub key_pkcs8: Vec<u8>,
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for ManifestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManifestSigner")
    }
}

impl ManifestSigner {
    fn sign(&self, manifest: &[u8]) -> Result<Vec<u8>, String> {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.key_pkcs8, &rng)
            .map_err(|_| "the hub's key (tls.key) is not an ECDSA P-256 key".to_owned())?;
        key.sign(&rng, manifest)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| "signing the manifest failed".to_owned())
    }
}

/// Check the manifest's signature: made by the key of the certificate
/// beside it, which `checker` finds to be a hub certificate of this
/// deployment, not revoked. Returns the signer's id.
pub fn check_signature(
    from: &Path,
    checker: &gongwen_common::pki::CertChecker,
    now: time::OffsetDateTime,
) -> Result<String, String> {
    let read = |name: &str| {
        std::fs::read(from.join(name)).map_err(|e| {
            format!(
                "{} has no {name} ({e}): its manifest is not signed, so a changed file with a changed sum would not be noticed; nothing was restored",
                from.display()
            )
        })
    };
    let (manifest, signature, pem) = (read(MANIFEST)?, read(SIGNATURE)?, read(SIGNER)?);
    let cert = pem::parse(&pem)
        .ok()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .ok_or_else(|| format!("{SIGNER} is not a PEM certificate"))?;
    let public = gongwen_common::signed::cert_public_key(&cert).map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &public)
        .verify(&manifest, &signature)
        .map_err(|_| {
            format!(
                "the signature {SIGNATURE} does not match {MANIFEST}: the backup was changed; nothing was restored"
            )
        })?;
    let who = checker
        .check(&cert, now)
        .map_err(|e| format!("the backup was signed by a certificate this deployment does not trust now: {e}; nothing was restored"))?;
    if who.role != gongwen_common::Role::Hub {
        return Err(format!(
            "the backup was signed by {} ({}), not by a hub; nothing was restored",
            who.id, who.role
        ));
    }
    Ok(who.id.to_string())
}
/// What the backup is: when, which generation, how many documents.
pub const INFO: &str = "backup.json";

/// The staging folder a snapshot is made in, inside the data folder.
pub fn staging_dir(data_dir: &Path, stamp: &str) -> PathBuf {
    data_dir.join(format!("backup-staging-{stamp}"))
}

/// Hex SHA-256 of a file, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Every file under `dir`, as paths relative to it, sorted.
pub fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let rel = rel.join(e.file_name());
            let kind = e.file_type()?;
            if kind.is_dir() {
                stack.push(rel);
            } else if kind.is_file() {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One line of the manifest: the sum and the path.
pub fn manifest_line(sum: &str, rel: &Path) -> String {
    format!("{sum}  {}\n", rel.display())
}

/// Read a manifest into (path, sum) pairs; a malformed line is an error
/// naming it.
pub fn parse_manifest(text: &str) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((sum, path)) = line.split_once("  ") else {
            return Err(format!("{MANIFEST} line {}: not `SUM  PATH`", n + 1));
        };
        let valid_sum = sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit());
        let rel = PathBuf::from(path);
        let inside = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !valid_sum || !inside || path.is_empty() {
            return Err(format!(
                "{MANIFEST} line {}: {line:?} is not a sum and a path inside the backup",
                n + 1
            ));
        }
        out.push((rel, sum.to_ascii_lowercase()));
    }
    if out.is_empty() {
        return Err(format!("{MANIFEST} lists no files"));
    }
    Ok(out)
}

/// Copy `from` to `to` and fsync it.
fn copy_synced(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::File::create(to)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])?;
    }
    dst.sync_all()
}

/// Copy a staging folder to `out` (which must be new or empty) with the
/// manifest; returns how many files and bytes.
pub fn write_backup(
    staging: &Path,
    out: &Path,
    info: &serde_json::Value,
    signer: &ManifestSigner,
) -> Result<(usize, u64), String> {
    let io = |what: &Path| {
        let what = what.to_owned();
        move |e: std::io::Error| format!("{}: {e}", what.display())
    };
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{} is not empty: give a new folder for the backup",
            out.display()
        ));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut manifest = String::new();
    let mut bytes = 0;
    let files = files_under(staging).map_err(io(staging))?;
    for rel in &files {
        let (src, dst) = (staging.join(rel), out.join(rel));
        copy_synced(&src, &dst).map_err(io(&dst))?;
        bytes += std::fs::metadata(&dst).map_err(io(&dst))?.len();
        manifest.push_str(&manifest_line(&sha256_file(&dst).map_err(io(&dst))?, rel));
    }
    let info_path = out.join(INFO);
    let info_text = serde_json::to_string_pretty(info).map_err(|e| e.to_string())? + "\n";
    gongwen_common::fsutil::write_atomic(&info_path, info_text.as_bytes(), 0o600)
        .map_err(io(&info_path))?;
    manifest.push_str(&manifest_line(
        &sha256_file(&info_path).map_err(io(&info_path))?,
        Path::new(INFO),
    ));
    let manifest_path = out.join(MANIFEST);
    gongwen_common::fsutil::write_atomic(&manifest_path, manifest.as_bytes(), 0o600)
        .map_err(io(&manifest_path))?;
    let signature = signer.sign(manifest.as_bytes())?;
    let sig_path = out.join(SIGNATURE);
    gongwen_common::fsutil::write_atomic(&sig_path, &signature, 0o600).map_err(io(&sig_path))?;
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE", signer.cert_der.clone()));
    let cert_path = out.join(SIGNER);
    gongwen_common::fsutil::write_atomic(&cert_path, pem.as_bytes(), 0o644)
        .map_err(io(&cert_path))?;
    Ok((files.len(), bytes))
}

/// Refuse anything under `dir` that is not a plain file or folder (a
/// symbolic link, a pipe, a device): a restore copies files, and a link
/// would have it read, or write, somewhere else.
fn only_files_and_folders(dir: &Path) -> Result<(), String> {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in entries {
            let e = e.map_err(|e| format!("{}: {e}", d.display()))?;
            let kind = e.file_type().map_err(|e| format!("{}: {e}", e))?;
            if kind.is_dir() {
                stack.push(e.path());
            } else if !kind.is_file() {
                return Err(format!(
                    "{} is a symbolic link or a special file, which a backup never holds; nothing was restored",
                    e.path().display()
                ));
            }
        }
    }
    Ok(())
}

/// Check every file of the backup in `from` against its manifest: all
/// listed files present with their sums, nothing unlisted.
pub fn verify_backup(from: &Path) -> Result<Vec<PathBuf>, String> {
    if std::fs::symlink_metadata(from).is_ok_and(|m| !m.is_dir()) {
        return Err(format!("{} is not a folder", from.display()));
    }
    only_files_and_folders(from)?;
    let text = std::fs::read_to_string(from.join(MANIFEST)).map_err(|e| {
        format!(
            "{} is not a gongwen backup (no readable {MANIFEST}: {e})",
            from.display()
        )
    })?;
    let listed = parse_manifest(&text)?;
    for (rel, sum) in &listed {
        let path = from.join(rel);
        let actual = sha256_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if &actual != sum {
            return Err(format!(
                "{} does not match its SHA-256 in {MANIFEST}: the backup is damaged or was changed; nothing was restored",
                rel.display()
            ));
        }
    }
    let present = files_under(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for rel in &present {
        let own = [MANIFEST, SIGNATURE, SIGNER].map(Path::new);
        if !own.contains(&rel.as_path()) && !listed.iter().any(|(l, _)| l == rel) {
            return Err(format!(
                "{} is in the backup but not in its {MANIFEST}; nothing was restored",
                rel.display()
            ));
        }
    }
    Ok(listed.into_iter().map(|(rel, _)| rel).collect())
}

/// Copy a verified backup into the empty `data_dir` (made 0700), files
/// owned like `data_dir` when it existed (a restore run as root into the
/// folder the package made for the gongwen user).
pub fn restore_files(from: &Path, files: &[PathBuf], data_dir: &Path) -> Result<(), String> {
    if std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{} (data_dir) is not empty: restore only into an empty data folder (move the old one away first)",
            data_dir.display()
        ));
    }
    let owner = std::fs::metadata(data_dir).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.uid(), m.gid())
    });
    gongwen_common::fsutil::create_private_dir(data_dir)
        .map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let copied = files
        .iter()
        .filter(|rel| rel.as_path() != Path::new(INFO))
        .try_for_each(|rel| {
            let dst = data_dir.join(rel);
            copy_synced(&from.join(rel), &dst).map_err(|e| format!("{}: {e}", dst.display()))
        });
    if let Err(e) = copied {
        // Half a store is worse than none: leave the folder empty, as it was.
        if let Ok(entries) = std::fs::read_dir(data_dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path())
                    .or_else(|_| std::fs::remove_file(entry.path()));
            }
        }
        return Err(format!(
            "{e}; nothing was restored ({} is empty again)",
            data_dir.display()
        ));
    }
    if let Some((uid, gid)) = owner {
        let mut paths = vec![data_dir.to_owned()];
        for rel in files_under(data_dir).map_err(|e| e.to_string())? {
            let mut p = PathBuf::new();
            for c in rel.components() {
                p.push(c);
                paths.push(data_dir.join(&p));
            }
        }
        paths.sort();
        paths.dedup();
        for p in paths {
            // Only root may give files away; as anyone else they are ours
            // already.
            let _ = std::os::unix::fs::chown(&p, Some(uid), Some(gid));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn test_signer() -> ManifestSigner {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["hub".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        ManifestSigner {
            key_pkcs8: key.serialize_der(),
            cert_der: cert.der().to_vec(),
        }
    }

    #[test]
    fn a_symbolic_link_in_a_backup_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("store.redb"), b"db").unwrap();
        let out = dir.path().join("out");
        write_backup(&staging, &out, &serde_json::json!({}), &test_signer()).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", out.join("spool")).unwrap();
        let e = verify_backup(&out).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_manifest_reads_back_and_refuses_paths_outside() {
        let sum = "a".repeat(64);
        let text = format!("{sum}  store.redb\n{sum}  spool/x.ct\n");
        let m = parse_manifest(&text).unwrap();
        assert_eq!(m[1].0, PathBuf::from("spool/x.ct"));
        for bad in [
            format!("{sum}  ../etc/passwd\n"),
            format!("{sum}  /etc/passwd\n"),
            "abc  store.redb\n".to_string(),
            "no separator\n".to_string(),
            String::new(),
        ] {
            assert!(parse_manifest(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_changed_byte_or_an_extra_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir_all(staging.join("spool")).unwrap();
        std::fs::write(staging.join("store.redb"), b"db").unwrap();
        std::fs::write(staging.join("spool/a.ct"), b"content").unwrap();
        let out = dir.path().join("out");
        let (n, bytes) = write_backup(
            &staging,
            &out,
            &serde_json::json!({"documents": 1}),
            &test_signer(),
        )
        .unwrap();
        assert_eq!((n, bytes), (2, 9));
        let files = verify_backup(&out).unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        // Into an empty folder only.
        let data = dir.path().join("data");
        restore_files(&out, &files, &data).unwrap();
        assert_eq!(std::fs::read(data.join("spool/a.ct")).unwrap(), b"content");
        assert!(
            restore_files(&out, &files, &data)
                .unwrap_err()
                .contains("not empty")
        );

        std::fs::write(out.join("spool/a.ct"), b"contenT").unwrap();
        let e = verify_backup(&out).unwrap_err();
        assert!(e.contains("spool/a.ct does not match"), "{e}");
        std::fs::write(out.join("spool/a.ct"), b"content").unwrap();
        std::fs::write(out.join("stray"), b"x").unwrap();
        assert!(verify_backup(&out).unwrap_err().contains("stray"));

        // A copy that fails half way leaves the data folder empty.
        std::fs::remove_file(out.join("stray")).unwrap();
        let empty = dir.path().join("data2");
        let mut files = verify_backup(&out).unwrap();
        files.push(PathBuf::from("spool/missing.ct"));
        let e = restore_files(&out, &files, &empty).unwrap_err();
        assert!(e.contains("nothing was restored"), "{e}");
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    }
}
