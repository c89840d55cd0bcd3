//! Enrollment in bulk: a CSV of units in, one ready bundle per unit out.
//!
//! `units.csv` has a header row naming its columns — `id`, `name` and
//! optionally `role` (`node` when absent) — in any order, UTF-8 with or
//! without the BOM Excel writes, fields quoted as CSV quotes them. Every row
//! is checked before anything is issued: a bad id, an empty name, a repeated
//! id or an unknown role stops the run and names its line.
//!
//! Each unit gets `DIR/<id>/` with its certificate, its key (0600), the CA
//! certificate, a ready `agent.toml` for the Debian layout (config in
//! `/etc/gongwen/`, data in `/var/lib/gongwen-agent`) and `安装说明.txt`,
//! and `DIR/<id>.tar.gz` of the same folder to hand over.
//!
//! The parsing and the texts are plain functions; [`enroll`] does the
//! issuing and the files.

use std::path::{Path, PathBuf};

use gongwen_common::suite::Suite;
use gongwen_common::{NodeId, Role};
use time::OffsetDateTime;

use crate::ca::{Ca, IssueRequest, Validity};
use crate::error::CaError;

/// Where the Debian packages put the agent's configuration and data.
pub const ETC_DIR: &str = "/etc/gongwen";
pub const AGENT_DATA_DIR: &str = "/var/lib/gongwen-agent";

/// One unit to enroll, from one line of the CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRow {
    /// The line in the file (1 is the header).
    pub line: usize,
    pub id: NodeId,
    pub name: String,
    pub role: Role,
    /// Groups the unit belongs to (the optional `groups` column, names
    /// separated by `;`), e.g. `市级;油田`.
    pub groups: Vec<String>,
    /// Where the unit's clerks reach its web console (the optional
    /// `console` column: host names or addresses separated by `;`, e.g.
    /// `gongwen.harbin.gov.cn;10.20.1.5`): the bundle then turns the
    /// console on for the LAN, with HTTPS for these names. Without it, the
    /// console listens on the agent's machine only.
    pub console: Vec<String>,
}

/// Where a bundle's console listens: on the LAN with HTTPS, or on the
/// machine itself.
pub const CONSOLE_LAN: &str = "0.0.0.0:8443";
pub const CONSOLE_LOCAL: &str = "127.0.0.1:8480";

/// A host name or address clerks type to reach a console: an IP address,
/// or a DNS name of letters, digits, hyphens and dots.
fn console_host(h: &str) -> Result<String, String> {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(h.to_owned());
    }
    let fine = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if fine {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(format!(
            "console {h:?}: give the host names or IP addresses clerks type, separated by ;"
        ))
    }
}

/// The fields of one CSV record (RFC 4180: commas, quotes doubled inside
/// quoted fields). Records spanning lines are not supported: a line break
/// inside quotes is an error, since no unit name holds one.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            }
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' if !quoted => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            _ => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field);
    Ok(fields)
}

/// Read and check `units.csv`; every problem names its line.
pub fn parse_units(text: &str) -> Result<Vec<UnitRow>, CaError> {
    let bad =
        |line: usize, why: String| CaError::InvalidRequest(format!("units.csv line {line}: {why}"));
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let Some((_, header)) = lines.next() else {
        return Err(bad(
            1,
            "the file is empty; its first line must be `id,name,role`".into(),
        ));
    };
    let header = csv_fields(header).map_err(|e| bad(1, e))?;
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(id_col), Some(name_col)) = (column("id"), column("name")) else {
        return Err(bad(
            1,
            format!(
                "the header must name the columns id and name (and optionally role), not {:?}",
                header.join(",")
            ),
        ));
    };
    let role_col = column("role");
    let groups_col = column("groups");
    let console_col = column("console");
    let mut rows: Vec<UnitRow> = Vec::new();
    let mut line_of: std::collections::HashMap<NodeId, usize> = std::collections::HashMap::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields = csv_fields(line).map_err(|e| bad(n, e))?;
        let get = |i: usize| fields.get(i).map(|s| s.trim()).unwrap_or("");
        let id =
            NodeId::parse(get(id_col)).map_err(|e| bad(n, format!("id {:?}: {e}", get(id_col))))?;
        let name = get(name_col).to_owned();
        if name.is_empty() {
            return Err(bad(n, format!("{id} has no name")));
        }
        // It goes into agent.toml, the install notes and the certificate.
        if name.chars().any(char::is_control) {
            return Err(bad(n, format!("{id}'s name holds a control character")));
        }
        let role = match role_col.map(get).unwrap_or("") {
            "" | "node" => Role::Node,
            "supervisor" => Role::Supervisor,
            other => {
                return Err(bad(
                    n,
                    format!("role {other:?}: a unit is a node or a supervisor"),
                ));
            }
        };
        let mut groups = Vec::new();
        for g in groups_col
            .map(get)
            .unwrap_or("")
            .split([';', '；'])
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            if g.chars().any(char::is_control) || g.contains(['"', '\\']) {
                return Err(bad(n, format!("group {g:?}: a group name is plain text")));
            }
            if !groups.iter().any(|have: &String| have == g) {
                groups.push(g.to_owned());
            }
        }
        let mut console = Vec::new();
        for h in console_col
            .map(get)
            .unwrap_or("")
            .split([';', '；'])
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            let h = console_host(h).map_err(|e| bad(n, e))?;
            if !console.contains(&h) {
                console.push(h);
            }
        }
        if let Some(first) = line_of.insert(id.clone(), n) {
            return Err(bad(n, format!("{id} is already on line {first}")));
        }
        rows.push(UnitRow {
            line: n,
            id,
            name,
            role,
            groups,
            console,
        });
    }
    if rows.is_empty() {
        return Err(bad(2, "no units under the header".into()));
    }
    Ok(rows)
}

/// A ready `agent.toml` for a unit installed from the Debian package.
pub fn agent_toml(row: &UnitRow, hubs: &[String], hub_name: &str, suite: Suite) -> String {
    let id = &row.id;
    let hub = match hubs {
        [one] => format!("\"{one}\""),
        many => format!(
            "[{}]",
            many.iter()
                .map(|h| format!("\"{h}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "# {name} ({id}): made by gongwen-certs enroll\n\
         node_id  = \"{id}\"\n\
         hub      = {hub}\n\
         hub_name = \"{hub_name}\"\n\
         root     = \"{AGENT_DATA_DIR}\"\n\
         [tls]\n\
         cert = \"{ETC_DIR}/{id}.crt\"\n\
         key  = \"{ETC_DIR}/{id}.key\"\n\
         ca   = \"{ETC_DIR}/ca.crt\"\n\
         {keys}\
         {console}",
        name = row.name,
        console = console_toml(row),
        keys = match suite {
            Suite::Standard => format!(
                "# The unit's document encryption key, made at enrollment: the hub\n\
                 # can take documents for this unit before its agent first connects.\n\
                 encryption_key = \"{ETC_DIR}/{id}.enc.key\"\n"
            ),
            Suite::Gm => format!(
                "# 国密: the unit's SM2 signing and encryption keys and their binding,\n\
                 # made at enrollment (the hub can take documents for this unit\n\
                 # before its agent first connects).\n\
                 sm2_sign_key = \"{ETC_DIR}/{id}.sm2-sign.key\"\n\
                 sm2_enc_key  = \"{ETC_DIR}/{id}.sm2-enc.key\"\n\
                 sm2_binding  = \"{ETC_DIR}/{id}.sm2.binding\"\n"
            ),
        }
    )
}

/// The `[console]` of a bundle: on the LAN with HTTPS when the unit's
/// console hosts are known, else on this machine only.
fn console_toml(row: &UnitRow) -> String {
    let id = &row.id;
    if row.console.is_empty() {
        format!(
            "# The web console, on this machine only (enroll with a console column\n\
             # to serve it to the LAN with HTTPS).\n\
             [console]\n\
             listen = \"{CONSOLE_LOCAL}\"\n"
        )
    } else {
        format!(
            "# The web console for the unit's clerks, on the LAN with HTTPS:\n\
             # https://{host}:8443/ (a certificate from the province's CA).\n\
             [console]\n\
             listen   = \"{CONSOLE_LAN}\"\n\
             tls_cert = \"{ETC_DIR}/{id}.console.crt\"\n\
             tls_key  = \"{ETC_DIR}/{id}.console.key\"\n",
            host = row.console[0]
        )
    }
}

/// The steps that open the console to clerks, in Chinese.
fn console_notes(row: &UnitRow) -> String {
    let id = &row.id;
    let first_account = format!(
        "建立第一个控制台账户（管理员）：\n\
            sudo -u gongwen gongwen-agent user add 用户名 --display-name 姓名 --role admin --config {ETC_DIR}/agent.toml\n\
            （密码在提示后输入两次，不会显示；以后可在同一命令中用 --role clerk 为各位文书建立账户。）\n"
    );
    if row.console.is_empty() {
        format!(
            "5. 控制台（网页）：只在本机打开 http://{CONSOLE_LOCAL}/ 。\n\
             6. {first_account}\
             如要让本单位其他电脑用浏览器办理公文，请省级管理员在登记表的 console 一栏填写本机的地址后重新登记。\n"
        )
    } else {
        let urls: Vec<String> = row
            .console
            .iter()
            .map(|h| {
                if h.contains(':') {
                    format!("https://[{h}]:8443/")
                } else {
                    format!("https://{h}:8443/")
                }
            })
            .collect();
        format!(
            "5. 控制台（网页）的证书和私钥：\n\
                sudo install -m 0644 {id}.console.crt {ETC_DIR}/\n\
                sudo install -m 0600 -o gongwen -g gongwen {id}.console.key {ETC_DIR}/\n\
             6. {first_account}\
             7. 在各办公电脑上把根证书 ca.crt 安装为“受信任的根证书颁发机构”，然后用浏览器打开：{}\n\
                防火墙需允许本单位局域网访问本机 TCP 8443 端口。\n",
            urls.join(" 或 ")
        )
    }
}

/// Install steps for the unit's administrator, in Chinese.
pub fn install_notes(row: &UnitRow, hubs: &[String], suite: Suite) -> String {
    let id = &row.id;
    let (keys, public, private) = match suite {
        Suite::Standard => (
            format!("公文加密私钥\n{id}.enc.key（两把私钥"),
            format!("{id}.crt ca.crt agent.toml"),
            format!("{id}.key {id}.enc.key"),
        ),
        Suite::Gm => (
            format!(
                "国密 SM2 签名私钥 {id}.sm2-sign.key、\nSM2 加密私钥 {id}.sm2-enc.key 及其绑定 {id}.sm2.binding（三把私钥"
            ),
            format!("{id}.crt ca.crt agent.toml {id}.sm2.binding"),
            format!("{id}.key {id}.sm2-sign.key {id}.sm2-enc.key"),
        ),
    };
    format!(
        "{name}（{id}）公文交换节点安装说明\n\
         \n\
         本目录包含本单位的节点证书 {id}.crt、私钥 {id}.key、{keys}请妥善保管，勿外传）、根证书 ca.crt 和配置文件 agent.toml。\n\
         \n\
         1. 安装软件包：sudo apt install ./gongwen-agent_*.deb\n\
         2. 复制证书、私钥和配置：\n\
            sudo install -m 0644 {public} {ETC_DIR}/\n\
            sudo install -m 0600 -o gongwen -g gongwen {private} {ETC_DIR}/\n\
         3. 启动服务：sudo systemctl enable --now gongwen-agent\n\
         4. 查看状态：sudo systemctl status gongwen-agent；日志：journalctl -u gongwen-agent\n\
         {console}\
         \n\
         交换中心地址：{hubs}\n\
         收发文件夹：{AGENT_DATA_DIR}/outbox/（发文）、{AGENT_DATA_DIR}/inbox/（收文）\n\
         如无法连接，请确认本机可以访问上述地址的 UDP 端口，并联系省级管理员。\n",
        name = row.name,
        hubs = hubs.join("、"),
        console = console_notes(row),
    )
}

/// What [`enroll`] did with one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolled {
    /// Issued now; its bundle and archive were written.
    Issued { id: NodeId, serial: String },
    /// Enrolled before (valid certificate, bundle present): left as it is.
    AlreadyEnrolled { id: NodeId },
    /// Has a valid certificate but no bundle in the output folder (issued
    /// by hand, or the bundle was moved): nothing was issued.
    CertifiedElsewhere { id: NodeId, serial: String },
}

/// What the enrollment needs besides the units.
#[derive(Debug, Clone)]
pub struct EnrollPlan {
    pub hubs: Vec<String>,
    pub hub_name: String,
    pub days: u32,
    pub out: PathBuf,
}

/// Issue a certificate and write a bundle and an archive for every unit
/// not enrolled yet.
pub fn enroll(
    ca: &mut Ca,
    units: &[UnitRow],
    plan: &EnrollPlan,
    now: OffsetDateTime,
) -> Result<Vec<Enrolled>, CaError> {
    ca.defer_saves();
    let result = enroll_each(ca, units, plan, now);
    // The bundles on disk, then what was issued (before a failure too)
    // recorded.
    flush(ca, plan)?;
    result
}

/// Bundles and the CA's files on disk, then the registry saved.
fn flush(ca: &mut Ca, plan: &EnrollPlan) -> Result<(), CaError> {
    if plan.out.exists() {
        gongwen_common::fsutil::sync_filesystem(&plan.out).map_err(CaError::io(&plan.out))?;
    }
    ca.flush()
}

/// How many units `enroll` issues between two saves of the registry.
const SAVE_EVERY: usize = 1000;

fn enroll_each(
    ca: &mut Ca,
    units: &[UnitRow],
    plan: &EnrollPlan,
    now: OffsetDateTime,
) -> Result<Vec<Enrolled>, CaError> {
    let mut done = Vec::with_capacity(units.len());
    let mut issued_since_save = 0;
    for row in units {
        let dir = plan.out.join(row.id.as_str());
        if let Some(serial) = ca.valid_serial(&row.id, now) {
            if dir.join(format!("{}.crt", row.id)).exists() {
                done.push(Enrolled::AlreadyEnrolled { id: row.id.clone() });
            } else {
                done.push(Enrolled::CertifiedElsewhere {
                    id: row.id.clone(),
                    serial,
                });
            }
            continue;
        }
        issued_since_save += 1;
        if issued_since_save >= SAVE_EVERY {
            flush(ca, plan)?;
            issued_since_save = 0;
        }
        let req = IssueRequest {
            id: row.id.clone(),
            role: row.role,
            name: Some(row.name.clone()),
            dns: Vec::new(),
            ips: Vec::new(),
            validity: Validity::days_from(now, plan.days),
            renew: false,
        };
        let issued = ca.issue(&req, now)?;
        ca.set_groups(&row.id, row.groups.clone())?;
        ca.write_issued(&dir, &row.id, &issued)?;
        let suite = ca.suite()?;
        match suite {
            Suite::Standard => {
                let (enc, binding) = ca.make_encryption_key(&row.id, &issued, now)?;
                let enc_path = dir.join(format!("{}.enc.key", row.id));
                ca.write_file(&enc_path, &enc.secret_bytes(), 0o600)?;
                let binding_path = dir.join(format!("{}.binding", row.id));
                ca.write_file(&binding_path, &binding, 0o644)?;
            }
            Suite::Gm => {
                let keys = ca.make_sm2_keys(&row.id, &issued, now)?;
                ca.write_sm2_keys(&dir, &row.id, &keys)?;
            }
        }
        if !row.console.is_empty() {
            let console = ca.issue_console(
                &row.id,
                Some(&row.name),
                &row.console,
                Validity::days_from(now, plan.days),
            )?;
            let path = dir.join(format!("{}.console.crt", row.id));
            ca.write_file(&path, console.cert_pem.as_bytes(), 0o644)?;
            let path = dir.join(format!("{}.console.key", row.id));
            ca.write_file(&path, console.key_pem.as_bytes(), 0o600)?;
        }
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            ca.write_file(&path, text.as_bytes(), 0o644)
        };
        write(
            "agent.toml",
            agent_toml(row, &plan.hubs, &plan.hub_name, suite),
        )?;
        write("安装说明.txt", install_notes(row, &plan.hubs, suite))?;
        let archive = plan.out.join(format!("{}.tar.gz", row.id));
        write_archive(&dir, row.id.as_str(), &archive).map_err(CaError::io(&archive))?;
        done.push(Enrolled::Issued {
            id: row.id.clone(),
            serial: issued.serial,
        });
    }
    Ok(done)
}

/// `archive` (.tar.gz) of the folder `dir` as `<top>/…`, keeping the files'
/// modes (the key stays 0600 when unpacked).
fn write_archive(dir: &Path, top: &str, archive: &Path) -> std::io::Result<()> {
    let tmp = archive.with_extension("gz.part");
    {
        let file = std::fs::File::create(&tmp)?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for path in names {
            let Some(name) = path.file_name() else {
                continue;
            };
            use std::os::unix::fs::PermissionsExt;
            let f = std::fs::File::open(&path)?;
            let meta = f.metadata()?;
            // Owner and times left out (the archive is the same wherever it
            // is made), the mode kept: the key must unpack as 0600.
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
            header.set_mode(meta.permissions().mode() & 0o777);
            tar.append_data(&mut header, Path::new(top).join(name), f)?;
        }
        let gz = tar.into_inner()?;
        // On disk with the rest of the batch (enroll's flush).
        gz.finish()?;
    }
    std::fs::rename(&tmp, archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_units(text).unwrap_err().to_string()
    }

    #[test]
    fn a_csv_as_excel_saves_it_reads_with_quotes_and_a_bom() {
        let text = "\u{feff}id,name,role\r\nharbin-gov,哈尔滨市人民政府,\r\n\"daqing-gov\",\"大庆市人民政府, 办公室\",node\r\nprov-supervision,省政府督查室,supervisor\r\n\r\n";
        let rows = parse_units(text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].id.as_str(), "harbin-gov");
        assert_eq!(rows[0].role, Role::Node);
        assert_eq!(rows[1].name, "大庆市人民政府, 办公室");
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[2].role, Role::Supervisor);
        // Columns in another order, no role column.
        let rows = parse_units("name,id\n\"He said \"\"hi\"\"\",a-gov\n").unwrap();
        assert_eq!(
            (rows[0].id.as_str(), rows[0].name.as_str()),
            ("a-gov", "He said \"hi\"")
        );
    }

    #[test]
    fn a_bad_row_names_its_line() {
        let e = err("id,name\nharbin-gov,哈尔滨\nHarbin Gov,哈尔滨\n");
        assert!(e.contains("line 3") && e.contains("Harbin Gov"), "{e}");
        let e = err("id,name\nharbin-gov,\n");
        assert!(e.contains("line 2") && e.contains("no name"), "{e}");
        let e = err("id,name\nharbin-gov,哈尔滨\rmarker = 1\n");
        assert!(
            e.contains("line 2") && e.contains("control character"),
            "{e}"
        );
        let e = err("id,name\nharbin-gov,哈尔滨\ndaqing-gov,大庆\nharbin-gov,又一个\n");
        assert!(
            e.contains("line 4") && e.contains("already on line 2"),
            "{e}"
        );
        let e = err("id,name,role\nhub,中心,hub\n");
        assert!(
            e.contains("line 2") && e.contains("node or a supervisor"),
            "{e}"
        );
        let e = err("unit,title\na-gov,A\n");
        assert!(e.contains("line 1") && e.contains("id and name"), "{e}");
        let e = err("id,name\n\"a-gov,A\n");
        assert!(e.contains("line 2") && e.contains("not closed"), "{e}");
        assert!(err("").contains("empty"));
        assert!(err("id,name\n").contains("no units"));
    }

    #[test]
    fn the_agent_config_is_one_the_agent_loads() {
        let row = &parse_units("id,name\nharbin-gov,哈尔滨市人民政府\n").unwrap()[0];
        let hubs = vec!["10.0.0.1:7443".to_string(), "10.0.0.2:7443".to_string()];
        let text = agent_toml(row, &hubs, "hub", Suite::Standard);
        let c = gongwen_common::config::AgentConfig::from_toml(
            Path::new("/etc/gongwen/agent.toml"),
            &text,
        )
        .unwrap();
        assert_eq!(c.node_id.as_str(), "harbin-gov");
        assert_eq!(c.hubs, hubs);
        assert_eq!(c.root, Path::new(AGENT_DATA_DIR));
        assert_eq!(c.tls.key, Path::new("/etc/gongwen/harbin-gov.key"));
        let notes = install_notes(row, &hubs, Suite::Standard);
        assert!(notes.contains("哈尔滨市人民政府") && notes.contains("10.0.0.2:7443"));
        // Without console hosts: the console on this machine only.
        let console = c.console.unwrap();
        assert_eq!(console.listen.to_string(), CONSOLE_LOCAL);
        assert!(console.tls.is_none());
        assert!(notes.contains("gongwen-agent user add"), "{notes}");

        // With them: on the LAN, with HTTPS, and the notes say how.
        let row = &parse_units(
            "id,name,console\nharbin-gov,哈尔滨市人民政府,gongwen.harbin.gov.cn；10.20.1.5\n",
        )
        .unwrap()[0];
        assert_eq!(row.console, ["gongwen.harbin.gov.cn", "10.20.1.5"]);
        let text = agent_toml(row, &hubs, "hub", Suite::Standard);
        let c = gongwen_common::config::AgentConfig::from_toml(
            Path::new("/etc/gongwen/agent.toml"),
            &text,
        )
        .unwrap();
        let console = c.console.unwrap();
        assert_eq!(console.listen.to_string(), CONSOLE_LAN);
        let tls = console.tls.unwrap();
        assert_eq!(tls.key, Path::new("/etc/gongwen/harbin-gov.console.key"));
        let notes = install_notes(row, &hubs, Suite::Standard);
        assert!(
            notes.contains("https://gongwen.harbin.gov.cn:8443/")
                && notes.contains("https://10.20.1.5:8443/")
                && notes.contains("harbin-gov.console.key")
                && notes.contains("ca.crt"),
            "{notes}"
        );
        for bad in ["-bad.host", "a b", "x_y.cn", "host/path"] {
            let e =
                parse_units(&format!("id,name,console\nharbin-gov,哈尔滨,{bad}\n")).unwrap_err();
            assert!(e.to_string().contains("console"), "{bad}: {e}");
        }
    }
}
