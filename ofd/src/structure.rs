//! The OFD's structure checked on arrival (GB/T 33190 chapter 7): the
//! entry file, each document's root, its pages, templates, resources and
//! signature list, every one present and well-formed; and what the pages
//! say, as text for the inbox search.

use std::io::{Read, Seek};

use crate::package::{MAX_XML_BYTES, Package, dir_of, normalize};
use crate::xml::{self, Element};

/// Most pages read of one document.
pub const MAX_PAGES: usize = 5_000;
/// Most text kept for search.
const MAX_TEXT: usize = 1024 * 1024;

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct Structure {
    /// Pages of the first document, in order: their content files.
    pub pages: Vec<String>,
    /// Their `ID`s (what a seal's `StampAnnot PageRef` names).
    pub page_ids: Vec<String>,
    /// Each document's signature list (`Signatures.xml`), if any.
    pub signature_lists: Vec<String>,
    /// The text of the pages, for search.
    pub text: String,
    /// The files the documents are made of (roots, pages, templates,
    /// resources): every seal must cover each of them.
    pub content: std::collections::BTreeSet<String>,
    /// What is wrong, in a clerk's words; empty when the file is sound.
    pub problems: Vec<String>,
}

/// Read and parse one XML file of the container.
pub fn read_xml<R: Read + Seek>(pkg: &mut Package<R>, path: &str) -> Result<Element, String> {
    let bytes = pkg.read(path, MAX_XML_BYTES)?;
    xml::parse(&bytes).map_err(|e| format!("{path}：{e}"))
}

fn expect_root(el: &Element, name: &str, path: &str) -> Result<(), String> {
    if el.name == name {
        Ok(())
    } else {
        Err(format!("{path} 的根元素是 {}，应为 {name}", el.name))
    }
}

/// Check the container's structure and gather its pages and text.
pub fn check<R: Read + Seek>(pkg: &mut Package<R>) -> Structure {
    let mut out = Structure::default();
    if let Err(e) = check_into(pkg, &mut out) {
        out.problems.push(e);
    }
    // What another unit's file makes us keep (in metadata.json) and show
    // is bounded: the first problems, each cut short, and their count.
    let all = out.problems.len();
    out.problems.truncate(MAX_PROBLEMS);
    for p in &mut out.problems {
        *p = clip(p);
    }
    if all > MAX_PROBLEMS {
        out.problems.push(format!("……共 {all} 处问题"));
    }
    out
}

/// Most problems kept of one file, and most characters of each.
const MAX_PROBLEMS: usize = 20;
const MAX_PROBLEM_CHARS: usize = 300;

/// `text` cut to [`MAX_PROBLEM_CHARS`] characters (with "…" when cut): a
/// reason names paths and names from the file, which its maker chose.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_PROBLEM_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn check_into<R: Read + Seek>(pkg: &mut Package<R>, out: &mut Structure) -> Result<(), String> {
    if !pkg.contains("OFD.xml") {
        return Err("缺少入口文件 OFD.xml（不是 OFD 文件）".into());
    }
    let ofd = read_xml(pkg, "OFD.xml")?;
    expect_root(&ofd, "OFD", "OFD.xml")?;
    if ofd.attr("DocType").is_some_and(|t| t != "OFD") {
        out.problems.push(format!(
            "OFD.xml 的文档类型是 {:?}，应为 \"OFD\"",
            ofd.attr("DocType").unwrap_or_default()
        ));
    }
    let bodies: Vec<&Element> = ofd.all("DocBody").collect();
    if bodies.is_empty() {
        return Err("OFD.xml 没有文档（DocBody）".into());
    }
    for (n, body) in bodies.iter().enumerate() {
        let root_loc = body
            .first("DocRoot")
            .map(|e| e.text.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("OFD.xml 第 {} 个文档没有 DocRoot", n + 1))?;
        let root_path =
            normalize("", root_loc).ok_or_else(|| format!("DocRoot 路径不合规：{root_loc}"))?;
        if let Some(sigs) = body.first("Signatures") {
            match normalize("", sigs.text.trim()) {
                Some(p) if pkg.contains(&p) => {
                    match read_xml(pkg, &p).and_then(|e| expect_root(&e, "Signatures", &p)) {
                        Ok(()) => out.signature_lists.push(p),
                        Err(e) => out.problems.push(e),
                    }
                }
                Some(p) => out.problems.push(format!("缺少签名列表 {p}")),
                None => out
                    .problems
                    .push(format!("签名列表路径不合规：{}", sigs.text.trim())),
            }
        }
        let first = n == 0;
        if let Err(e) = check_document(pkg, &root_path, first, out) {
            out.problems.push(e);
        }
    }
    Ok(())
}

fn check_document<R: Read + Seek>(
    pkg: &mut Package<R>,
    root_path: &str,
    first: bool,
    out: &mut Structure,
) -> Result<(), String> {
    out.content.insert(root_path.to_owned());
    let doc = read_xml(pkg, root_path)?;
    expect_root(&doc, "Document", root_path)?;
    let base = dir_of(root_path).to_owned();
    let common = doc
        .first("CommonData")
        .ok_or_else(|| format!("{root_path} 缺少 CommonData"))?;
    if common.path(&["PageArea", "PhysicalBox"]).is_none() {
        out.problems
            .push(format!("{root_path} 缺少页面区域（PageArea/PhysicalBox）"));
    }
    for res in common.all("PublicRes").chain(common.all("DocumentRes")) {
        check_file(pkg, &base, &res.text, "Res", out);
    }
    for template in common.all("TemplatePage") {
        match template.attr("BaseLoc") {
            Some(loc) => check_file(pkg, &base, loc, "Page", out),
            None => out
                .problems
                .push(format!("{root_path} 的模板页没有 BaseLoc")),
        }
    }
    let pages = doc
        .path(&["Pages"])
        .map(|p| p.all("Page").collect::<Vec<_>>())
        .unwrap_or_default();
    if pages.is_empty() {
        out.problems.push(format!("{root_path} 没有页面"));
    }
    if pages.len() > MAX_PAGES {
        return Err(format!("{root_path} 超过 {MAX_PAGES} 页"));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, page) in pages.iter().enumerate() {
        if let Some(id) = page.attr("ID")
            && !ids.insert(id.to_owned())
        {
            out.problems
                .push(format!("{root_path} 的页面标识 {id} 重复"));
        }
        let Some(loc) = page.attr("BaseLoc") else {
            out.problems
                .push(format!("{root_path} 第 {} 页没有 BaseLoc", i + 1));
            continue;
        };
        let Some(path) = normalize(&base, loc) else {
            out.problems
                .push(format!("第 {} 页路径不合规：{loc}", i + 1));
            continue;
        };
        out.content.insert(path.clone());
        match read_xml(pkg, &path).and_then(|e| expect_root(&e, "Page", &path).map(|()| e)) {
            Ok(page_xml) => {
                if first {
                    collect_text(&page_xml, &mut out.text);
                    out.pages.push(path);
                    out.page_ids
                        .push(page.attr("ID").unwrap_or_default().to_owned());
                }
            }
            Err(e) => out.problems.push(format!("第 {} 页：{e}", i + 1)),
        }
    }
    Ok(())
}

fn check_file<R: Read + Seek>(
    pkg: &mut Package<R>,
    base: &str,
    loc: &str,
    root: &str,
    out: &mut Structure,
) {
    let loc = loc.trim();
    let Some(path) = normalize(base, loc) else {
        out.problems.push(format!("路径不合规：{loc}"));
        return;
    };
    out.content.insert(path.clone());
    match read_xml(pkg, &path).and_then(|e| expect_root(&e, root, &path).map(|()| e)) {
        Ok(xml) if root == "Res" => {
            // The files a resource list names (fonts, images) are content too.
            let res_base = xml
                .attr("BaseLoc")
                .and_then(|b| normalize(dir_of(&path), b))
                .unwrap_or_else(|| dir_of(&path).to_owned());
            xml.walk(&mut |e| {
                if (e.name == "MediaFile" || e.name == "FontFile")
                    && let Some(p) = normalize(&res_base, &e.text)
                {
                    out.content.insert(p);
                }
            });
        }
        Ok(_) => {}
        Err(e) => out.problems.push(e),
    }
}

/// The text of a page's text objects, one object a line.
fn collect_text(page: &Element, text: &mut String) {
    page.walk(&mut |e| {
        if e.name == "TextObject" && text.len() < MAX_TEXT {
            let mut line = String::new();
            for code in e.all("TextCode") {
                line.push_str(code.text.trim());
            }
            if !line.is_empty() {
                text.push_str(&line);
                text.push('\n');
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn container(files: &[(&str, String)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, text) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_file_with_many_problems_keeps_the_first_each_cut_short_and_their_count() {
        let long = "页".repeat(2_000);
        let pages: String = (0..30)
            .map(|i| format!("<Page ID=\"{i}\" BaseLoc=\"{long}{i}.xml\"/>"))
            .collect();
        let bytes = container(&[
            ("OFD.xml", "<OFD DocType=\"OFD\"><DocBody><DocRoot>Doc_0/Document.xml</DocRoot></DocBody></OFD>".into()),
            ("Doc_0/Document.xml", format!("<Document><CommonData><PageArea><PhysicalBox>0 0 210 297</PhysicalBox></PageArea></CommonData><Pages>{pages}</Pages></Document>")),
        ]);
        let len = bytes.len() as u64;
        let mut pkg = Package::open(std::io::Cursor::new(bytes), len).unwrap();
        let found = check(&mut pkg);
        assert_eq!(
            found.problems.len(),
            MAX_PROBLEMS + 1,
            "{:?}",
            found.problems
        );
        assert!(
            found
                .problems
                .iter()
                .all(|p| p.chars().count() <= MAX_PROBLEM_CHARS + 1)
        );
        assert_eq!(found.problems[MAX_PROBLEMS], "……共 30 处问题");
        assert_eq!(clip("短"), "短");
    }
}
