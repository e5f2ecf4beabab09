//! `metrics:` in main.yaml: where the metrics endpoint listens. Without the
//! section there is no endpoint.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::check::{Checker, show};
use super::merge::merge_by_key;

/// `metrics.listen` when the section leaves it out: `127.0.0.1:9464`.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464));

/// `metrics:`: the metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `listen`: the socket address it listens on (default
    /// [`DEFAULT_METRICS_LISTEN`]); a port alone means `127.0.0.1:<port>`,
    /// port 0 picks a free port.
    pub listen: SocketAddr,
}

/// `metrics:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawMetrics {
    listen: Option<Spanned<Value>>,
}
merge_by_key!(RawMetrics { listen });

/// `metrics:`; `None` without the section.
pub(crate) fn metrics(c: &mut Checker, raw: Option<&RawMetrics>) -> Option<MetricsSettings> {
    let raw = raw?;
    let Some(at) = raw.listen.as_ref() else {
        return Some(MetricsSettings {
            listen: DEFAULT_METRICS_LISTEN,
        });
    };
    let value = c.json(at);
    let listen = listen_address(&value).unwrap_or_else(|reason| {
        c.error(
            &at.referenced,
            format!("`metrics.listen`: {reason}"),
            "write an IP address and a port: `127.0.0.1:9464` (this machine only), \
             `0.0.0.0:9464` (every interface), `[::1]:9464`, or a port alone \
             (`9464` is 127.0.0.1:9464; port 0 picks a free one)",
        );
        DEFAULT_METRICS_LISTEN
    });
    Some(MetricsSettings { listen })
}

/// A socket address, or a port alone on 127.0.0.1; an empty string (a
/// `${VAR:-}` left unset) is the default.
fn listen_address(value: &Value) -> Result<SocketAddr, String> {
    let text = match value {
        Value::Number(n) => return n.as_u64().ok_or_else(|| not_a_port(value)).and_then(local),
        Value::String(text) => text.trim(),
        other => return Err(format!("expected an address, found {}", show(other))),
    };
    if text.is_empty() {
        return Ok(DEFAULT_METRICS_LISTEN);
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map_err(|_| not_a_port(value))
            .and_then(local);
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let shown = text.escape_debug();
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Err(format!("`{shown}` has no port"));
    }
    Err(format!("`{shown}` is not an IP address with a port"))
}

/// `127.0.0.1:<port>`.
fn local(port: u64) -> Result<SocketAddr, String> {
    let port = u16::try_from(port).map_err(|_| format!("port {port} is above 65535"))?;
    Ok(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
}

fn not_a_port(value: &Value) -> String {
    format!("{} is not a port (0 to 65535)", show(value))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_addresses_and_ports() {
        let ok = |value: Value| listen_address(&value).map(|a| a.to_string());
        assert_eq!(ok(json!(9464)).as_deref(), Ok("127.0.0.1:9464"));
        assert_eq!(ok(json!("9100")).as_deref(), Ok("127.0.0.1:9100"));
        assert_eq!(ok(json!(0)).as_deref(), Ok("127.0.0.1:0"));
        assert_eq!(ok(json!("0.0.0.0:80")).as_deref(), Ok("0.0.0.0:80"));
        assert_eq!(ok(json!("[::1]:9464")).as_deref(), Ok("[::1]:9464"));
        assert_eq!(ok(json!("")).as_deref(), Ok("127.0.0.1:9464"));
    }

    #[test]
    fn explains_bad_addresses() {
        let err = |value: Value| listen_address(&value).expect_err("invalid");
        assert_eq!(err(json!(70000)), "port 70000 is above 65535");
        assert_eq!(err(json!(-1)), "`-1` is not a port (0 to 65535)");
        assert_eq!(err(json!("127.0.0.1")), "`127.0.0.1` has no port");
        assert_eq!(err(json!("::1")), "`::1` has no port");
        assert_eq!(
            err(json!("localhost:9464")),
            "`localhost:9464` is not an IP address with a port"
        );
        assert_eq!(err(json!(true)), "expected an address, found `true`");
    }
}
