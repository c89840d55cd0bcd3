//! The OFD container (GB/T 33190 chapter 6): a ZIP whose entries are read
//! one at a time, each under a size limit, with a budget for everything
//! decompressed from one file — a small file that inflates to gigabytes
//! stops at the budget instead of filling the agent's memory or disk.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

/// Most entries one OFD may hold.
pub const MAX_ENTRIES: usize = 20_000;
/// Largest XML file read into memory.
pub const MAX_XML_BYTES: u64 = 32 * 1024 * 1024;

/// An opened OFD container.
#[derive(Debug)]
pub struct Package<R> {
    zip: zip::ZipArchive<R>,
    /// Normalized path → the entry's name as stored.
    names: BTreeMap<String, String>,
    /// Bytes still allowed to be decompressed from this file.
    budget: u64,
}

/// The most one file may decompress to in all: fifty times its size, at
/// least 256 MiB and at most 2 GiB (a scanned 公文 of 200 pages is far
/// below; a ZIP bomb is far above).
fn budget_for(compressed: u64) -> u64 {
    compressed
        .saturating_mul(50)
        .clamp(256 * 1024 * 1024, 2 * 1024 * 1024 * 1024)
}

impl<R: Read + Seek> Package<R> {
    /// Open the container; `size` is the file's length (for the budget).
    pub fn open(reader: R, size: u64) -> Result<Package<R>, String> {
        let zip = zip::ZipArchive::new(reader).map_err(|e| format!("不是 OFD 容器（ZIP）：{e}"))?;
        if zip.len() > MAX_ENTRIES {
            return Err(format!("容器内文件超过 {MAX_ENTRIES} 个"));
        }
        let mut names = BTreeMap::new();
        for name in zip.file_names() {
            if name.ends_with('/') {
                continue;
            }
            let clean = normalize("", name).ok_or_else(|| format!("容器内文件名不合规：{name}"))?;
            if names.insert(clean, name.to_owned()).is_some() {
                return Err(format!("容器内文件重名：{name}"));
            }
        }
        Ok(Package {
            zip,
            names,
            budget: budget_for(size),
        })
    }

    /// Every file's path in the container (normalized, no leading `/`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    pub fn contains(&self, path: &str) -> bool {
        self.names.contains_key(path)
    }

    /// Stream `path`'s bytes to `sink`, at most `limit` of them.
    pub fn stream(
        &mut self,
        path: &str,
        limit: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, String> {
        let stored = self
            .names
            .get(path)
            .ok_or_else(|| format!("缺少文件 {path}"))?;
        let mut file = self
            .zip
            .by_name(stored)
            .map_err(|e| format!("{path} 无法读取：{e}"))?;
        let mut seen: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| format!("{path} 无法解压：{e}"))?;
            if n == 0 {
                break;
            }
            seen += n as u64;
            if seen > limit {
                return Err(format!("{path} 过大（超过 {} MiB）", limit / (1024 * 1024)));
            }
            if seen > self.budget {
                return Err("容器解压后过大（疑似压缩炸弹）".into());
            }
            sink(&buf[..n]);
        }
        self.budget -= seen;
        Ok(seen)
    }

    /// `path`'s bytes, at most `limit`.
    pub fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.stream(path, limit, &mut |b| out.extend_from_slice(b))?;
        Ok(out)
    }
}

/// Resolve an OFD location (ST_Loc: absolute from the container's root
/// when it starts with `/`, otherwise relative to `base`, the directory of
/// the file that names it) to a container path; `None` if it climbs out
/// of the container or is empty.
pub fn normalize(base: &str, loc: &str) -> Option<String> {
    let loc = loc.trim().replace('\\', "/");
    let mut parts: Vec<&str> = Vec::new();
    let joined;
    let full = if let Some(abs) = loc.strip_prefix('/') {
        abs
    } else {
        joined = format!("{base}/{loc}");
        joined.as_str()
    };
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

/// The directory part of a container path ("" at the root).
pub fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_within_the_container() {
        assert_eq!(
            normalize("Doc_0", "Pages/Page_0/Content.xml").unwrap(),
            "Doc_0/Pages/Page_0/Content.xml"
        );
        assert_eq!(
            normalize("Doc_0/Signs", "/Doc_0/Document.xml").unwrap(),
            "Doc_0/Document.xml"
        );
        assert_eq!(
            normalize("Doc_0/Signs/Sign_0", "../../Res/a.png").unwrap(),
            "Doc_0/Res/a.png"
        );
        assert_eq!(normalize("", "./OFD.xml").unwrap(), "OFD.xml");
        assert!(normalize("", "../etc/passwd").is_none());
        assert!(normalize("Doc_0", "../../x").is_none());
        assert!(normalize("", "").is_none());
        assert_eq!(dir_of("Doc_0/Document.xml"), "Doc_0");
        assert_eq!(dir_of("OFD.xml"), "");
    }
}
