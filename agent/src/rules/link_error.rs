//! Why the link to the hub failed, in words a unit's administrator can act
//! on. The classification is pure: QUIC and TLS errors in, [`LinkError`] out.

use std::net::SocketAddr;
use std::time::Duration;

use gongwen_common::stream::StreamError;
use gongwen_common::wire::RefuseCode;

/// TLS alert numbers (RFC 8446 §6) as they appear in QUIC crypto errors
/// (0x100 + alert).
mod alert {
    pub(super) const BAD_CERTIFICATE: u8 = 42;
    pub(super) const UNSUPPORTED_CERTIFICATE: u8 = 43;
    pub(super) const CERTIFICATE_REVOKED: u8 = 44;
    pub(super) const CERTIFICATE_EXPIRED: u8 = 45;
    pub(super) const UNKNOWN_CA: u8 = 48;
    pub(super) const ACCESS_DENIED: u8 = 49;
    pub(super) const DECRYPT_ERROR: u8 = 51;
    pub(super) const NO_APPLICATION_PROTOCOL: u8 = 120;
}

/// Why a connection attempt failed or a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("cannot resolve the hub's address {hub}: {detail}")]
    Resolve { hub: String, detail: String },
    #[error(
        "hub unreachable at {addr}: no answer within {after:?} (is the hub running, and are `hub` and the firewall right?)"
    )]
    Unreachable { addr: SocketAddr, after: Duration },
    #[error(
        "the hub refused our certificate: it has been revoked; ask the administrator for a new one"
    )]
    Revoked,
    #[error(
        "the hub refused our certificate: it has expired or is not valid yet; check this machine's clock, or ask the administrator to renew it"
    )]
    Expired,
    #[error(
        "the hub does not accept our certificate: it was issued by another CA, or the hub's revocation list has gone stale"
    )]
    UnknownCa,
    #[error("the hub refused our certificate: {0}")]
    CertificateRefused(String),
    #[error("wrong hub: {0}")]
    WrongHub(String),
    #[error("the hub's certificate cannot be trusted: {0}")]
    HubCertificate(String),
    #[error("the hub cut us off: our certificate has been revoked")]
    RevokedWhileConnected,
    #[error(
        "the hub's revocation list has gone stale; it refuses every unit until the administrator renews it (gongwen-certs crl)"
    )]
    HubCrlStale,
    #[error(
        "another agent with our certificate connected to the hub (are two agents running as this unit?)"
    )]
    Replaced,
    #[error("the hub is shutting down")]
    HubShuttingDown,
    #[error(
        "the hub turned a new connection away: it is shutting down, restarting, or has no room right now"
    )]
    HubTurnedAway,
    #[error("the hub refused us: {0}")]
    Refused(String),
    #[error("the hub broke off the handshake: {0}")]
    Protocol(String),
    #[error("connection to the hub lost: {0}")]
    Lost(String),
}

impl LinkError {
    /// What a clerk reads on the console: why the unit cannot reach the
    /// hub and whom to tell (the English above is for the log and the
    /// administrator).
    pub fn chinese(&self) -> &'static str {
        match self {
            LinkError::Resolve { .. } => "找不到交换中心的地址（域名解析失败）；请联系本单位管理员",
            LinkError::Unreachable { .. } => {
                "交换中心没有应答：可能是网络中断、防火墙阻断或交换中心停机"
            }
            LinkError::Revoked | LinkError::RevokedWhileConnected => {
                "本单位的证书已被吊销；请联系省级管理员重新办理"
            }
            LinkError::Expired => "本单位的证书已过期或尚未生效；请检查本机时间，或请管理员续期",
            LinkError::UnknownCa | LinkError::CertificateRefused(_) => {
                "交换中心不接受本单位的证书；请联系省级管理员"
            }
            LinkError::WrongHub(_) | LinkError::HubCertificate(_) => {
                "连接到的不是本单位的交换中心，或其证书不可信；请联系本单位管理员"
            }
            LinkError::HubCrlStale => {
                "交换中心的证书吊销列表已过期，暂不接受连接；请联系省级管理员"
            }
            LinkError::Replaced => "另一台机器以本单位的身份连上了交换中心；请联系本单位管理员",
            LinkError::HubShuttingDown | LinkError::HubTurnedAway => {
                "交换中心正在重启或繁忙，稍后自动重连"
            }
            LinkError::Refused(_) | LinkError::Protocol(_) => {
                "交换中心拒绝了连接；如持续出现，请联系本单位管理员"
            }
            LinkError::Lost(_) => "与交换中心的连接中断，正在重连",
        }
    }

    /// True when retrying cannot help until someone changes a certificate
    /// or the configuration (the agent still retries, more patiently).
    pub fn needs_administrator(&self) -> bool {
        matches!(
            self,
            LinkError::Revoked
                | LinkError::Expired
                | LinkError::UnknownCa
                | LinkError::CertificateRefused(_)
                | LinkError::WrongHub(_)
                | LinkError::HubCertificate(_)
                | LinkError::RevokedWhileConnected
                | LinkError::Replaced
        )
    }
}

fn crypto_alert(code: quinn::TransportErrorCode) -> Option<u8> {
    let c = u64::from(code);
    (0x100..=0x1ff).contains(&c).then(|| (c - 0x100) as u8)
}

/// Classify the error that ended (or prevented) a connection.
pub fn classify(err: &quinn::ConnectionError, hub_name: &str) -> LinkError {
    use quinn::ConnectionError as E;
    match err {
        // The hub's TLS stack refused us: the alert says why.
        E::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            LinkError::HubTurnedAway
        }
        E::ConnectionClosed(close) => match crypto_alert(close.error_code) {
            Some(alert::CERTIFICATE_REVOKED) => LinkError::Revoked,
            Some(alert::CERTIFICATE_EXPIRED) => LinkError::Expired,
            // decrypt_error: the signature on our certificate does not verify
            // with the hub's CA key, i.e. another CA (perhaps of the same
            // name) issued it.
            Some(alert::UNKNOWN_CA | alert::DECRYPT_ERROR) => LinkError::UnknownCa,
            Some(alert::BAD_CERTIFICATE | alert::UNSUPPORTED_CERTIFICATE) => {
                LinkError::CertificateRefused(
                    "it is not a valid unit certificate (wrong purpose or damaged)".into(),
                )
            }
            Some(alert::ACCESS_DENIED) => LinkError::CertificateRefused("access denied".into()),
            Some(alert::NO_APPLICATION_PROTOCOL) => {
                LinkError::WrongHub("the server does not speak gongwen/1".into())
            }
            Some(a) => LinkError::Protocol(format!("TLS alert {a}")),
            None => LinkError::Protocol(close.to_string()),
        },
        // Our own TLS stack refused the hub.
        E::TransportError(te) => match crypto_alert(te.code) {
            Some(alert::UNKNOWN_CA) => LinkError::WrongHub(format!(
                "its certificate is not issued by our CA ({})",
                te.reason
            )),
            Some(alert::BAD_CERTIFICATE) => LinkError::WrongHub(format!(
                "its certificate is not for hub_name {hub_name:?} ({})",
                te.reason
            )),
            Some(alert::CERTIFICATE_EXPIRED) => LinkError::HubCertificate(format!(
                "it has expired or is not valid yet; check this machine's clock ({})",
                te.reason
            )),
            Some(alert::UNSUPPORTED_CERTIFICATE) => LinkError::WrongHub(format!(
                "its certificate is not a server certificate ({})",
                te.reason
            )),
            Some(alert::ACCESS_DENIED) => LinkError::WrongHub(
                "its certificate is from our CA but issued to a unit, not to the hub".into(),
            ),
            Some(alert::DECRYPT_ERROR) => LinkError::WrongHub(format!(
                "its certificate is not signed by our CA ({})",
                te.reason
            )),
            Some(_) => LinkError::HubCertificate(te.reason.clone()),
            None => LinkError::Protocol(te.to_string()),
        },
        E::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            let code = u16::try_from(close.error_code.into_inner())
                .map(RefuseCode::from_u16)
                .unwrap_or(RefuseCode::Other);
            match code {
                RefuseCode::Revoked => LinkError::RevokedWhileConnected,
                RefuseCode::Expired => LinkError::Expired,
                RefuseCode::CrlStale => LinkError::HubCrlStale,
                RefuseCode::Replaced => LinkError::Replaced,
                RefuseCode::ShuttingDown => LinkError::HubShuttingDown,
                RefuseCode::Busy => LinkError::HubTurnedAway,
                _ => LinkError::Refused(reason),
            }
        }
        E::Reset => LinkError::Lost("the hub reset the connection (it may have restarted)".into()),
        E::TimedOut => LinkError::Lost("no answer from the hub for 30 s".into()),
        E::LocallyClosed => LinkError::Lost("closed by this agent".into()),
        E::VersionMismatch => LinkError::WrongHub("the server speaks another QUIC version".into()),
        E::CidsExhausted => LinkError::Lost("out of connection ids".into()),
    }
}

/// Classify a failure while exchanging hello and welcome.
pub fn classify_stream(err: &StreamError, hub_name: &str) -> LinkError {
    match err {
        StreamError::Read(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(
            e,
        )))
        | StreamError::Write(quinn::WriteError::ConnectionLost(e)) => classify(e, hub_name),
        other => LinkError::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::TransportErrorCode;

    fn closed_with_alert(alert: u8) -> quinn::ConnectionError {
        // Build the error as quinn reports a peer's CONNECTION_CLOSE.
        let te = quinn_proto::TransportError {
            code: TransportErrorCode::crypto(alert),
            frame: None,
            reason: String::new(),
        };
        quinn::ConnectionError::ConnectionClosed(te.into())
    }

    #[test]
    fn hub_alerts_become_plain_reasons() {
        assert_eq!(classify(&closed_with_alert(44), "hub"), LinkError::Revoked);
        assert_eq!(classify(&closed_with_alert(45), "hub"), LinkError::Expired);
        assert_eq!(
            classify(&closed_with_alert(48), "hub"),
            LinkError::UnknownCa
        );
        assert_eq!(
            classify(&closed_with_alert(51), "hub"),
            LinkError::UnknownCa
        );
        assert!(matches!(
            classify(&closed_with_alert(43), "hub"),
            LinkError::CertificateRefused(_)
        ));
    }

    #[test]
    fn application_close_codes_below_the_crypto_range_do_not_panic() {
        for code in [0u32, 1, 3, 6, 99, 0xff] {
            let close = quinn_proto::ApplicationClose {
                error_code: quinn::VarInt::from_u32(code),
                reason: Default::default(),
            };
            let _ = classify(&quinn::ConnectionError::ApplicationClosed(close), "hub");
            let te = quinn_proto::TransportError {
                code: TransportErrorCode::crypto(0),
                frame: None,
                reason: String::new(),
            };
            let _ = classify(&quinn::ConnectionError::TransportError(te), "hub");
        }
        // A transport (not crypto) close code from the peer.
        let close = quinn_proto::ConnectionClose {
            error_code: TransportErrorCode::PROTOCOL_VIOLATION,
            frame_type: None,
            reason: Default::default(),
        };
        assert!(matches!(
            classify(&quinn::ConnectionError::ConnectionClosed(close), "hub"),
            LinkError::Protocol(_)
        ));
    }

    #[test]
    fn a_connection_turned_away_says_so_plainly() {
        let close = quinn_proto::ConnectionClose {
            error_code: TransportErrorCode::CONNECTION_REFUSED,
            frame_type: None,
            reason: Default::default(),
        };
        let e = classify(&quinn::ConnectionError::ConnectionClosed(close), "hub");
        assert_eq!(e, LinkError::HubTurnedAway);
        assert!(!e.needs_administrator());
    }

    #[test]
    fn our_own_refusals_name_the_hub_as_wrong() {
        let local = |alert, reason: &str| {
            quinn::ConnectionError::TransportError(quinn_proto::TransportError {
                code: TransportErrorCode::crypto(alert),
                frame: None,
                reason: reason.into(),
            })
        };
        assert!(matches!(
            classify(&local(48, "UnknownIssuer"), "hub"),
            LinkError::WrongHub(_)
        ));
        let e = classify(&local(42, "NotValidForName"), "hub.prov");
        assert!(e.to_string().contains("hub.prov"), "{e}");
        let e = classify(&local(49, "ApplicationVerificationFailure"), "hub");
        assert!(
            matches!(e, LinkError::WrongHub(ref s) if s.contains("not to the hub")),
            "{e}"
        );
    }
}
