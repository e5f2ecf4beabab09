//! The shape of a webhook URL, checked by hand: `http://` or `https://`, a
//! host, an optional port, then a path and query without spaces. Webhook
//! URLs are often secrets (Slack's hold a token in their path), so messages
//! never quote them and [`redacted`] shows only where they point.

use std::net::Ipv6Addr;

/// A URL split where it matters.
struct Parts<'a> {
    /// `http` or `https`, as written.
    scheme: &'a str,
    /// The host and optional port, without user info.
    host_port: &'a str,
    /// Whether anything comes after the host and port, user info included.
    has_more: bool,
}

/// Splits `url` into its parts; why it is no webhook URL otherwise. The
/// reasons never quote the URL.
fn split(url: &str) -> Result<Parts<'_>, String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains a space or a control character (percent-encode it: %20)".into());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("it does not start with `http://` or `https://`".into());
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(if is_scheme(scheme) {
            format!("its scheme is `{scheme}`, not http or https")
        } else {
            "it does not start with `http://` or `https://`".into()
        });
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (user_info, host_port) = match authority.rsplit_once('@') {
        Some((_, host_port)) => (true, host_port),
        None => (false, authority),
    };
    Ok(Parts {
        scheme,
        host_port,
        has_more: user_info || end < rest.len(),
    })
}

/// Checks that `url` is an `http://` or `https://` URL with a host and an
/// optional port; the reason otherwise (without quoting the URL).
pub(crate) fn check(url: &str) -> Result<(), String> {
    let parts = split(url)?;
    let (host, port) = host_and_port(parts.host_port)?;
    check_host(host)?;
    match port {
        None => Ok(()),
        Some("") => Err("it has a `:` after the host but no port".into()),
        Some(port)
            if port.chars().all(|c| c.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|p| p > 0) =>
        {
            Ok(())
        }
        Some(_) => Err("its port is not a number from 1 to 65535".into()),
    }
}

/// Where `url` points, safe to log: `https://hooks.slack.com/***` (user
/// info, path and query hidden); `***` for something that is no URL.
pub(crate) fn redacted(url: &str) -> String {
    match split(url) {
        Ok(parts) => format!(
            "{}://{}{}",
            parts.scheme.to_ascii_lowercase(),
            parts.host_port,
            if parts.has_more { "/***" } else { "" }
        ),
        Err(_) => "***".to_owned(),
    }
}

/// `host` and `port` of `host:port`, `[v6]:port`, `host` or `[v6]`.
fn host_and_port(host_port: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return Err("its IPv6 host has no closing `]`".into());
        };
        if address.parse::<Ipv6Addr>().is_err() {
            return Err("its host in `[...]` is not an IPv6 address".into());
        }
        return match after {
            "" => Ok((host_port, None)),
            port => match port.strip_prefix(':') {
                Some(port) => Ok((host_port, Some(port))),
                None => Err("something other than `:port` follows its IPv6 host".into()),
            },
        };
    }
    match host_port.split_once(':') {
        Some((_, port)) if port.contains(':') => Err(
            "its host has more than one `:` (write an IPv6 address in brackets: `[::1]`)".into(),
        ),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((host_port, None)),
    }
}

/// A host name or IPv4 address: dot-separated labels of letters, digits, `-`
/// and `_` (an IPv6 host was checked with its brackets).
fn check_host(host: &str) -> Result<(), String> {
    if host.starts_with('[') {
        return Ok(());
    }
    if host.is_empty() {
        return Err("it has no host".into());
    }
    let labels = host.strip_suffix('.').unwrap_or(host);
    let valid = labels.split('.').all(|label| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    });
    if valid {
        Ok(())
    } else {
        Err("its host is not a host name or an IP address".into())
    }
}

/// A URL scheme: a letter, then letters, digits, `+`, `-` and `.`.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_urls() {
        for good in [
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "http://127.0.0.1:8080/alert?token=abc",
            "HTTPS://example.com",
            "https://user:pw@alerts.example.com:8443/x",
            "http://[::1]:9000/hook",
            "http://[fe80::1]",
            "https://example.com./x#frag",
            "http://alert_host/",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn explains_bad_urls_without_quoting_them() {
        let cases = [
            (
                "hooks.slack.com/x",
                "it does not start with `http://` or `https://`",
            ),
            (
                "ftp://example.com/x",
                "its scheme is `ftp`, not http or https",
            ),
            ("https:///path", "it has no host"),
            (
                "https://exa mple.com",
                "it contains a space or a control character (percent-encode it: %20)",
            ),
            (
                "https://example.com:/x",
                "it has a `:` after the host but no port",
            ),
            (
                "https://example.com:99999",
                "its port is not a number from 1 to 65535",
            ),
            (
                "https://example.com:0",
                "its port is not a number from 1 to 65535",
            ),
            (
                "https://example.com:+80",
                "its port is not a number from 1 to 65535",
            ),
            (
                "https://a..b/",
                "its host is not a host name or an IP address",
            ),
            ("https://[::1/", "its IPv6 host has no closing `]`"),
            (
                "https://[nope]/",
                "its host in `[...]` is not an IPv6 address",
            ),
            (
                "https://::1/",
                "its host has more than one `:` (write an IPv6 address in brackets: `[::1]`)",
            ),
        ];
        for (url, reason) in cases {
            assert_eq!(check(url), Err(reason.to_owned()), "{url}");
        }
    }

    #[test]
    fn redaction_keeps_only_where_it_points() {
        assert_eq!(
            redacted("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(redacted("HTTP://h:8080?k=v"), "http://h:8080/***");
        assert_eq!(redacted("https://u:secret@h/"), "https://h/***");
        assert_eq!(redacted("https://example.com"), "https://example.com");
        assert_eq!(redacted("not a url"), "***");
    }
}
