//! gongwen's reading of a 公文's OFD (GB/T 33190): the container opened
//! under limits, its structure checked, its text gathered for search, and
//! its electronic seals verified (验章, GB/T 38540 and GM/T 0031).
//!
//! Plain functions over a file and a trust configuration; no sockets, no
//! state. A file from another unit is hostile input: every size, depth and
//! count is bounded before it is read.

pub mod der;
pub mod package;
pub mod seal;
pub mod structure;
pub mod trust;
pub mod verify;
pub mod xml;

pub use structure::Structure;
pub use trust::SealTrust;
pub use verify::{SealCheck, SealInputs, SealResult, SealVerdict};

use time::OffsetDateTime;

/// What reading an OFD found: its structure (and problems), and each
/// seal's verdict.
#[derive(Debug, Clone)]
pub struct Examined {
    pub structure: Structure,
    pub seals: Vec<SealCheck>,
}

impl Examined {
    /// Whether the file could be read as an OFD at all.
    pub fn sound(&self) -> bool {
        self.structure.problems.is_empty()
    }
}

/// Read the OFD at `path`: structure, text and seals.
pub fn examine(
    path: &std::path::Path,
    trust: &SealTrust,
    now: OffsetDateTime,
) -> Result<Examined, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("无法打开文件：{e}"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    examine_reader(std::io::BufReader::new(file), size, trust, now)
}

/// Open the OFD at `path` and check its structure: the container, ready
/// for more reading, and what the check found.
pub fn open(
    path: &std::path::Path,
) -> Result<
    (
        package::Package<std::io::BufReader<std::fs::File>>,
        Structure,
    ),
    String,
> {
    let file = std::fs::File::open(path).map_err(|e| format!("无法打开文件：{e}"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut pkg = package::Package::open(std::io::BufReader::new(file), size)?;
    let structure = structure::check(&mut pkg);
    Ok((pkg, structure))
}

/// As [`examine`], over any seekable reader of `size` bytes.
pub fn examine_reader<R: std::io::Read + std::io::Seek>(
    reader: R,
    size: u64,
    trust: &SealTrust,
    now: OffsetDateTime,
) -> Result<Examined, String> {
    let mut pkg = package::Package::open(reader, size)?;
    let structure = structure::check(&mut pkg);
    let seals = match verify::verify_seals(&mut pkg, &structure, trust, now) {
        Ok(s) => s,
        Err(e) => vec![SealCheck {
            verdict: SealVerdict {
                result: SealResult::Unverifiable,
                reason: format!("签名列表无法读取：{e}"),
                seal_name: None,
                signer: None,
                signed_at: None,
            },
            inputs: None,
        }],
    };
    Ok(Examined { structure, seals })
}
