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
