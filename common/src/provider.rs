//! rustls's side of our crypto: the one provider both TLS and certificate
//! checks use (ring), and time as rustls counts it.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::UnixTime;

/// The only cryptography provider gongwen uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `now` as rustls counts time.
pub fn unix_time(now: time::OffsetDateTime) -> UnixTime {
    let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}
