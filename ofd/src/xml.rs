//! The OFD's XML read into a small tree, with limits: a file from another
//! unit is hostile input, and a reader that recursed or allocated without
//! bound could be made to take the agent down. No DTD is accepted (OFD has
//! none), so no entity can expand.

use quick_xml::events::Event;

/// Deepest nesting accepted. Real 公文 nest a page's objects a few levels
/// (composite objects, page blocks); 64 leaves room and stops a file of
/// ten thousand nested blocks.
pub const MAX_DEPTH: usize = 64;
/// Most elements in one XML file.
pub const MAX_ELEMENTS: usize = 500_000;

/// An element: its local name (namespace prefix dropped), attributes,
/// children and the text directly inside it.
#[derive(Debug, Clone, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The children named `name`.
    pub fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Element> + 's {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn first(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Descend by names: `path(&["CommonData", "PageArea"])`.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |e, n| e.first(n))
    }

    /// Every element under this one, depth first, itself included.
    pub fn walk(&self, visit: &mut dyn FnMut(&Element)) {
        visit(self);
        for c in &self.children {
            c.walk(visit);
        }
    }
}

fn local(name: &[u8]) -> String {
    let local = match name.iter().rposition(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    String::from_utf8_lossy(local).into_owned()
}

/// Parse `bytes` (UTF-8) into its root element; the error in a clerk's
/// words.
pub fn parse(bytes: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "不是 UTF-8 编码的 XML".to_owned())?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let open = |e: &quick_xml::events::BytesStart<'_>| -> Result<Element, String> {
        let mut el = Element {
            name: local(e.name().as_ref()),
            ..Element::default()
        };
        for a in e.attributes() {
            let a = a.map_err(|e| format!("属性格式错误：{e}"))?;
            let value = a
                .unescape_value()
                .map_err(|e| format!("属性值格式错误：{e}"))?;
            el.attrs.push((local(a.key.as_ref()), value.into_owned()));
        }
        Ok(el)
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("XML 格式错误（第 {} 字节）：{e}", reader.buffer_position()))?;
        match event {
            Event::Start(e) => {
                elements += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("XML 嵌套超过 {MAX_DEPTH} 层"));
                }
                if elements > MAX_ELEMENTS {
                    return Err(format!("XML 元素超过 {MAX_ELEMENTS} 个"));
                }
                if root.is_some() {
                    return Err("XML 有多个根元素".into());
                }
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(format!("XML 元素超过 {MAX_ELEMENTS} 个"));
                }
                let el = open(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err("XML 有多个根元素".into()),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| "XML 结束标记多余".to_owned())?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(el) = stack.last_mut() {
                    let t = t.unescape().map_err(|e| format!("XML 文字格式错误：{e}"))?;
                    el.text.push_str(&t);
                }
            }
            Event::CData(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::DocType(_) => return Err("XML 含有 DTD（OFD 不使用 DTD）".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("XML 没有结束（文件不完整）".into());
    }
    root.ok_or_else(|| "XML 是空的".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_without_prefix_attributes_and_text() {
        let root = parse(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ofd:OFD xmlns:ofd=\"http://www.ofdspec.org/2016\" Version=\"1.0\">\
             <ofd:DocBody><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody>\
             <ofd:Note a=\"&lt;x&gt;\"/></ofd:OFD>"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(root.name, "OFD");
        assert_eq!(root.attr("Version"), Some("1.0"));
        assert_eq!(
            root.path(&["DocBody", "DocRoot"]).unwrap().text,
            "Doc_0/Document.xml"
        );
        assert_eq!(root.first("Note").unwrap().attr("a"), Some("<x>"));
    }

    #[test]
    fn refuses_deep_nesting_dtds_and_broken_files() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(deep.as_bytes()).unwrap_err().contains("嵌套"));
        let fine = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(fine.as_bytes()).is_ok());
        let dtd = "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>";
        assert!(parse(dtd.as_bytes()).is_err());
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<a/><b/>").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
    }
}
