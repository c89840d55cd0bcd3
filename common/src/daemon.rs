//! What every gongwen daemon does the same way at its edge: log to stderr
//! (plain text when not on a terminal) and stop on Ctrl-C or SIGTERM.

/// Log to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    init_logging_as(crate::config::LogFormat::Text);
}

/// Log to stderr as `format` says: text, or one JSON object per line
/// (`timestamp`, `level`, `fields.message`, and `spans` with their fields —
/// the unit as `node`, the document as `doc`) for a log collector.
pub fn init_logging_as(format: crate::config::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        crate::config::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        crate::config::LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
}

/// Tell systemd the daemon is ready (`Type=notify`), and from now on feed
/// its watchdog (`WatchdogSec`) at half the interval it asks for, from the
/// daemon's own runtime: a runtime that stops making progress stops the
/// pings, and systemd restarts the service. Nothing happens when not run
/// by systemd (no `NOTIFY_SOCKET`). Call it inside the runtime.
pub fn notify_ready() {
    use sd_notify::NotifyState;
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!("could not tell systemd we are ready: {e}");
    }
    if let Some(every) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            loop {
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                tokio::time::sleep(every / 2).await;
            }
        });
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
