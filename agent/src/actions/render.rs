//! The 正文 shown in the browser: a received PDF or OFD rendered to page
//! images on demand, and cached — PDF by poppler (Debian's poppler-utils),
//! OFD by this agent's own binary (`gongwen-agent render-ofd`: our bounded
//! reader first, then ofd-core's renderer, then the seals' pictures).
//!
//! Content from another unit is hostile input. Every poppler run is a
//! child process under `prlimit` (address space, CPU seconds, the size of
//! any file it writes, open files) and a wall-clock limit; what it writes
//! goes to a scratch name and becomes the cached page only once complete;
//! a file that will not render says so, and the agent carries on.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most pages shown of one file.
pub const MAX_PAGES: u32 = 200;
/// Memory one poppler run may map.
const MEMORY_BYTES: u64 = 1024 * 1024 * 1024;
/// CPU seconds one run may use, and how long it may take at all.
const CPU_SECONDS: u64 = 30;
const WALL: Duration = Duration::from_secs(40);
/// Largest file a run may write (a page image).
const OUTPUT_BYTES: u64 = 32 * 1024 * 1024;
/// Page images are scaled to fit this many pixels on their long side.
const PAGE_PIXELS: u32 = 1400;
/// poppler runs at once, whatever the browsers ask: a 200-page document
/// opened in a few tabs would otherwise start hundreds of processes, each
/// allowed a gigabyte (this machine has two cores).
const RUNS_AT_ONCE: usize = 2;

static RUNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(RUNS_AT_ONCE);

/// Whether a file is one the agent renders (by its name): PDF, OFD, and
/// the raster images a 公文 carries (a scanned page, a photo).
pub fn renders(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("pdf") || ext.eq_ignore_ascii_case("ofd"))
        || is_image_name(name)
}

/// Raster images, shown on the document page itself: redrawn by the agent
/// (decoded in a child under limits and written again as a plain PNG), so
/// the browser never decodes a file another unit made. Never SVG (it can
/// carry script).
pub fn is_image_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| {
        ["png", "jpg", "jpeg", "gif", "bmp"]
            .iter()
            .any(|e| ext.eq_ignore_ascii_case(e))
    })
}

fn is_image(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| is_image_name(&n.to_string_lossy()))
}

/// Redraw a raster image as a PNG no larger than a page image. Runs in the
/// child process.
pub fn render_image(input: &Path, out: &Path) -> Result<(), String> {
    let bytes = std::fs::read(input).map_err(|e| format!("无法打开文件：{e}"))?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("图片无法显示：{e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let picture = reader.decode().map_err(|e| format!("图片无法显示：{e}"))?;
    let picture = if picture.width().max(picture.height()) > PAGE_PIXELS {
        picture.resize(
            PAGE_PIXELS,
            PAGE_PIXELS,
            image::imageops::FilterType::Triangle,
        )
    } else {
        picture
    };
    picture
        .save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| format!("无法保存图像：{e}"))
}

fn is_ofd(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ofd"))
}

/// The program that renders an OFD: this agent's own binary, run as a
/// child (`gongwen-agent render-ofd`) under the same limits as poppler.
/// When the agent runs inside another program (the tests run agents in
/// their own process), the `gongwen-agent` beside it, or one directory up
/// (a test binary sits in `target/*/deps`).
fn agent_exe() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("本机无法显示正文（{e}）"))?;
    if exe.file_stem().is_some_and(|s| s == "gongwen-agent") {
        return Ok(exe);
    }
    exe.parent()
        .into_iter()
        .flat_map(|d| [Some(d), d.parent()])
        .flatten()
        .map(|d| d.join("gongwen-agent"))
        .find(|p| p.is_file())
        .ok_or_else(|| "本机无法显示 OFD 正文（找不到 gongwen-agent 程序）".to_owned())
}

/// The pixels per millimetre an OFD page is drawn at: an A4 page's long
/// side (297 mm) at [`PAGE_PIXELS`], as PDF pages are.
fn ofd_px_per_mm() -> f64 {
    f64::from(PAGE_PIXELS) / 297.0
}

/// How many pages an OFD has, read by [`gongwen_ofd`]'s bounded reader
/// (in the child).
pub fn ofd_page_count(input: &Path) -> Result<usize, String> {
    Ok(sound_ofd(input)?.1.pages.len())
}

/// An OFD opened and checked by our own reader; an error if it is not
/// sound (it is then never handed to the renderer).
fn sound_ofd(
    input: &Path,
) -> Result<
    (
        gongwen_ofd::package::Package<std::io::BufReader<std::fs::File>>,
        gongwen_ofd::Structure,
    ),
    String,
> {
    let (pkg, structure) = gongwen_ofd::open(input)?;
    match structure.problems.first() {
        Some(p) => Err(format!("正文无法解析：{p}")),
        None => Ok((pkg, structure)),
    }
}

/// Draw page `page` (from 1) of an OFD into `out` as a PNG, with each
/// seal's picture where the seal was applied. Runs in the child process:
/// the file was checked by our own reader first (size, depth and count
/// limits), then drawn by ofd-core.
pub fn render_ofd_page(input: &Path, page: u32, out: &Path) -> Result<(), String> {
    let (mut pkg, structure) = sound_ofd(input)?;
    let index = (page as usize)
        .checked_sub(1)
        .filter(|i| *i < structure.pages.len())
        .ok_or_else(|| format!("没有第 {page} 页"))?;
    let seals = gongwen_ofd::verify::placed_seals(&mut pkg, &structure);
    let mut reader = ofd_core::OfdReader::open(input).map_err(|e| format!("正文无法解析：{e}"))?;
    let body = reader
        .ofd()
        .doc_bodies
        .first()
        .cloned()
        .ok_or_else(|| "正文无法解析：没有文档".to_owned())?;
    let doc = reader
        .load_document(&body)
        .map_err(|e| format!("正文无法解析：{e}"))?;
    let px = ofd_px_per_mm();
    let options = ofd_core::RenderOptions::with_dpi(px * 25.4);
    let mut image = reader
        .render_page_to_image(&doc, index, &options)
        .map_err(|e| format!("正文第 {page} 页无法显示：{e}"))?;
    for seal in seals.iter().filter(|s| s.page == index) {
        let Ok(picture) = image::load_from_memory(&seal.picture) else {
            continue; // a picture format we do not draw: the verdict still stands
        };
        let [x, y, w, h] = seal.boundary;
        let (w, h) = ((w * px).round(), (h * px).round());
        if !(1.0..=4000.0).contains(&w) || !(1.0..=4000.0).contains(&h) {
            continue;
        }
        let picture = picture
            .resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle)
            .to_rgba8();
        image::imageops::overlay(
            &mut image,
            &picture,
            (x * px).round() as i64,
            (y * px).round() as i64,
        );
    }
    image
        .save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| format!("无法保存页面图像：{e}"))
}

/// Run a poppler tool on hostile input, within the limits; its standard
/// output, or why not in a clerk's words.
async fn run_limited(tool: &Path, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, String> {
    let _turn = RUNS
        .acquire()
        .await
        .map_err(|_| "正文无法显示（显示服务已停止）".to_owned())?;
    let mut cmd = tokio::process::Command::new("prlimit");
    cmd.arg(format!("--as={MEMORY_BYTES}"))
        .arg(format!("--cpu={CPU_SECONDS}"))
        .arg(format!("--fsize={OUTPUT_BYTES}"))
        .arg("--nofile=64")
        .arg("--")
        .arg(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| {
        format!(
            "本机无法显示正文（{}：{e}；请安装 poppler-utils）",
            tool.display()
        )
    })?;
    match tokio::time::timeout(WALL, child.wait_with_output()).await {
        Err(_) => Err(format!(
            "正文过于复杂，{} 秒内没能显示完（请下载后查看）",
            WALL.as_secs()
        )),
        Ok(Err(e)) => Err(format!("正文无法显示（{e}）")),
        Ok(Ok(out)) if out.status.success() => Ok(out.stdout),
        Ok(Ok(out)) => {
            // Our own OFD renderer says why in its last line.
            let said = String::from_utf8_lossy(&out.stderr);
            match said
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("gongwen-agent: error: "))
            {
                Some(why) => Err(why.to_owned()),
                None => Err("正文无法显示：文件已损坏，或不是能显示的文件（请下载后查看）".into()),
            }
        }
    }
}

/// How many pages a PDF has, asked of poppler once and kept in `cache`.
pub async fn page_count(pdf: &Path, cache: &Path) -> Result<u32, String> {
    let kept = cache.join("pages");
    if let Some(n) = tokio::fs::read_to_string(&kept)
        .await
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    {
        return Ok(n);
    }
    let n = if is_image(pdf) {
        Some(1)
    } else if is_ofd(pdf) {
        let exe = agent_exe()?;
        let out = run_limited(
            &exe,
            &["render-ofd".as_ref(), "--pages".as_ref(), pdf.as_os_str()],
        )
        .await?;
        String::from_utf8_lossy(&out).trim().parse::<u32>().ok()
    } else {
        let out = run_limited("pdfinfo".as_ref(), &[pdf.as_os_str()]).await?;
        let text = String::from_utf8_lossy(&out);
        text.lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|n| n.trim().parse::<u32>().ok())
    }
    .filter(|n| *n > 0)
    .ok_or_else(|| "正文无法显示：读不出页数".to_owned())?;
    // Only a hint for next time: a failure to keep it costs a run.
    if tokio::fs::create_dir_all(cache).await.is_ok() {
        // A torn write reads as no number: poppler is asked again.
        let _ = tokio::fs::write(&kept, n.to_string()).await;
    }
    Ok(n)
}

/// Page `page` (from 1) of `pdf` as a PNG, rendered once into `cache` and
/// kept there.
pub async fn page_png(pdf: &Path, page: u32, cache: &Path) -> Result<PathBuf, String> {
    if page == 0 || page > MAX_PAGES {
        return Err(format!("没有第 {page} 页"));
    }
    let done = cache.join(format!("{page}.png"));
    if tokio::fs::try_exists(&done).await.unwrap_or(false) {
        return Ok(done);
    }
    tokio::fs::create_dir_all(cache)
        .await
        .map_err(|e| format!("无法保存页面图像：{e}"))?;
    // Rendered under a scratch name of its own (two views of one page at
    // once each render, and the first rename wins): a run cut short
    // leaves no page.
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = cache.join(format!(".{page}-{}-{run}", std::process::id()));
    let n = page.to_string();
    let px = PAGE_PIXELS.to_string();
    let args: Vec<&std::ffi::OsStr> = vec![
        "-png".as_ref(),
        "-f".as_ref(),
        n.as_ref(),
        "-l".as_ref(),
        n.as_ref(),
        "-scale-to".as_ref(),
        px.as_ref(),
        "-singlefile".as_ref(),
        pdf.as_os_str(),
        scratch.as_os_str(),
    ];
    let made = {
        let mut p = scratch.clone().into_os_string();
        p.push(".png");
        PathBuf::from(p)
    };
    let ran = if is_image(pdf) {
        let exe = agent_exe()?;
        let image_args: Vec<&std::ffi::OsStr> = vec![
            "render-image".as_ref(),
            pdf.as_os_str(),
            "--out".as_ref(),
            made.as_os_str(),
        ];
        run_limited(&exe, &image_args).await
    } else if is_ofd(pdf) {
        let exe = agent_exe()?;
        let ofd_args: Vec<&std::ffi::OsStr> = vec![
            "render-ofd".as_ref(),
            pdf.as_os_str(),
            "--page".as_ref(),
            n.as_ref(),
            "--out".as_ref(),
            made.as_os_str(),
        ];
        run_limited(&exe, &ofd_args).await
    } else {
        run_limited("pdftoppm".as_ref(), &args).await
    };
    match ran {
        Ok(_) if made.exists() => {
            // Over one another's identical page, if two rendered it.
            tokio::fs::rename(&made, &done)
                .await
                .map_err(|e| format!("无法保存页面图像：{e}"))?;
            Ok(done)
        }
        Ok(_) => Err(format!("正文第 {page} 页无法显示")),
        Err(e) => {
            let _ = tokio::fs::remove_file(&made).await;
            Err(e)
        }
    }
}

/// The text of a PDF's first 50 pages (for the inbox search), read by
/// poppler's `pdftotext` under the same limits as a page, with at most 20 s
/// and 256 KiB of text; `None` when poppler is missing or the file will
/// not give its text. Blocking (arrival runs off the async runtime).
pub fn pdf_text(pdf: &Path) -> Option<String> {
    use std::io::Read;
    const TEXT_BYTES: u64 = 256 * 1024;
    let mut child = std::process::Command::new("prlimit")
        .arg(format!("--as={MEMORY_BYTES}"))
        .arg(format!("--cpu={CPU_SECONDS}"))
        .arg("--nofile=64")
        .arg("--")
        .arg("pdftotext")
        .args(["-q", "-enc", "UTF-8", "-l", "50"])
        .arg(pdf)
        .arg("-")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.take(TEXT_BYTES).read_to_end(&mut text);
        text
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = reader.join().ok()?;
    status.filter(|s| s.success())?;
    let mut text = String::from_utf8_lossy(&text).into_owned();
    text.retain(|c| c != '\u{c}');
    Some(text)
}

/// Where the pages of a received document's file are cached: under
/// `state/render/`, by document and by the file's digest (a file of the
/// same name in another document is another file).
pub fn cache_dir(state: &Path, doc: gongwen_common::DocId, sha256: &[u8; 32]) -> PathBuf {
    state
        .join("render")
        .join(doc.to_string())
        .join(gongwen_common::pki::serial_hex(sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pdf_files_are_rendered() {
        assert!(renders("正文.pdf") && renders("A.PDF"));
        assert!(!renders("正文.docx") && !renders("pdf") && !renders("x.pdf.exe"));
    }
}
