//! `bridge:` in main.yaml: the NATS bridge that shares events between
//! orchestrators. Without the section everything stays in-process.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::MailboxSettings;
use super::check::{Checker, show};
use super::delivery::{self, RawMailbox};
use super::merge::merge_by_key;
pub use crate::bridge_jetstream::JetStreamSettings;
use crate::bridge_jetstream::RawJetStream;
use crate::bridge_presence::RawPresence;
pub use crate::bridge_presence::{DEFAULT_PRESENCE_TTL, PresenceSettings};
use crate::bridge_tokens::{name_token, patterns};
use crate::bridge_work::RawWork;
pub use crate::bridge_work::WorkGroup;

/// `bridge:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    /// `bridge.nats`.
    pub nats: NatsSettings,
}

/// `bridge.nats`: where the broker is and what crosses it.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// `url`: one server or a cluster (`nats://host:4222`, `tls://...`).
    pub servers: Vec<String>,
    /// `node`: this orchestrator's id; `None`: host name and pid.
    pub node: Option<String>,
    /// `subject_prefix`: events travel as `<prefix>.<topic>` (default `orch`).
    pub subject_prefix: String,
    /// `auth`: how the bridge proves who it is.
    pub auth: NatsAuth,
    /// `tls`: certificates, when the servers want TLS.
    pub tls: Option<NatsTls>,
    /// `export`: local topic patterns published to NATS.
    pub export: Vec<String>,
    /// `import`: topic patterns whose NATS subjects are delivered to local
    /// subscribers.
    pub import: Vec<String>,
    /// `jetstream`: at-least-once delivery through a stream; `None`: core
    /// NATS, at most once.
    pub jetstream: Option<JetStreamSettings>,
    /// `serve`: topics whose requests from other nodes this node's modules
    /// answer, while one of them subscribes (exact topics).
    pub serve: Vec<String>,
    /// `ask`: topic patterns whose requests go to NATS when no local module
    /// subscribes.
    pub ask: Vec<String>,
    /// `outbox`: exported events waiting for the broker (default: main.yaml's
    /// `mailbox`).
    pub outbox: MailboxSettings,
    /// `presence`: this node's record in a JetStream key-value bucket with a
    /// TTL, and the other nodes' records watched; `None`: no presence.
    pub presence: Option<PresenceSettings>,
    /// `work`: shared work, each group's jobs handled by one node of those
    /// with a subscriber.
    pub work: Vec<WorkGroup>,
}

impl std::fmt::Debug for NatsSettings {
    /// Shows everything but the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("servers", &self.servers)
            .field("node", &self.node)
            .field("subject_prefix", &self.subject_prefix)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("export", &self.export)
            .field("import", &self.import)
            .field("jetstream", &self.jetstream)
            .field("serve", &self.serve)
            .field("ask", &self.ask)
            .field("outbox", &self.outbox)
            .field("presence", &self.presence)
            .field("work", &self.work)
            .finish()
    }
}

/// `bridge.nats.auth`.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum NatsAuth {
    /// No credentials.
    #[default]
    None,
    /// `token`.
    Token(String),
    /// `user` and `password`.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// `nkey`: an nkey seed (`SU...`).
    NkeySeed(String),
    /// `creds`: a credentials file (JWT and seed).
    CredsFile(PathBuf),
}

impl std::fmt::Debug for NatsAuth {
    /// The kind only: credentials never reach debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsAuth({})", self.kind())
    }
}

impl NatsAuth {
    /// What kind it is, for messages (never the secret).
    pub fn kind(&self) -> &'static str {
        match self {
            NatsAuth::None => "none",
            NatsAuth::Token(_) => "token",
            NatsAuth::UserPassword { .. } => "user/password",
            NatsAuth::NkeySeed(_) => "nkey",
            NatsAuth::CredsFile(_) => "creds file",
        }
    }
}

/// `bridge.nats.tls`: PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatsTls {
    /// `ca`: the certificate authority to trust.
    pub ca: Option<PathBuf>,
    /// `cert` and `key`: a client certificate (both or neither).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// `bridge:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawBridge {
    nats: Option<Spanned<RawNats>>,
}
merge_by_key!(RawBridge { nats });

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawNats {
    url: Option<Spanned<Value>>,
    node: Option<Spanned<String>>,
    subject_prefix: Option<Spanned<String>>,
    auth: Option<RawAuth>,
    tls: Option<RawTls>,
    export: Option<Vec<Spanned<String>>>,
    import: Option<Vec<Spanned<String>>>,
    jetstream: Option<Spanned<RawJetStream>>,
    serve: Option<Vec<Spanned<String>>>,
    ask: Option<Vec<Spanned<String>>>,
    outbox: Option<RawMailbox>,
    presence: Option<Spanned<RawPresence>>,
    work: Option<Vec<Spanned<RawWork>>>,
}
merge_by_key!(RawNats {
    url,
    node,
    subject_prefix,
    auth,
    tls,
    export,
    import,
    jetstream,
    outbox,
    presence,
    serve,
    ask,
    work
});

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawAuth {
    token: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    nkey: Option<Spanned<String>>,
    creds: Option<Spanned<String>>,
}
merge_by_key!(RawAuth {
    token,
    user,
    password,
    nkey,
    creds
});

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTls {
    ca: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
}
merge_by_key!(RawTls { ca, cert, key });

/// The default `subject_prefix`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "orch";

/// `bridge:`; `None` without it (or without `nats:` in it). Relative paths
/// are resolved against `root`.
pub(crate) fn bridge(
    c: &mut Checker,
    raw: Option<&RawBridge>,
    outbox_default: &MailboxSettings,
    root: &std::path::Path,
) -> Option<BridgeSettings> {
    let raw = raw?.nats.as_ref()?;
    let at = raw.referenced;
    let raw = &raw.value;
    let servers = servers(c, raw.url.as_ref(), &at);
    let node = raw
        .node
        .as_ref()
        .and_then(|n| name_token(c, "bridge.nats.node", n));
    let subject_prefix = match raw.subject_prefix.as_ref() {
        Some(p) => subject_prefix(c, p),
        None => DEFAULT_SUBJECT_PREFIX.to_owned(),
    };
    let nats = NatsSettings {
        servers,
        node,
        subject_prefix,
        auth: auth(c, raw.auth.as_ref(), root),
        tls: raw.tls.as_ref().map(|tls| self::tls(c, tls, root)),
        export: patterns(c, "bridge.nats.export", raw.export.as_deref()),
        import: patterns(c, "bridge.nats.import", raw.import.as_deref()),
        jetstream: raw
            .jetstream
            .as_ref()
            .map(|js| crate::bridge_jetstream::jetstream(c, js)),
        serve: crate::bridge_requests::served(c, raw.serve.as_deref()),
        ask: patterns(c, "bridge.nats.ask", raw.ask.as_deref()),
        outbox: delivery::mailbox(c, "bridge.nats.outbox", raw.outbox.as_ref(), outbox_default),
        presence: None,
        work: crate::bridge_work::groups(c, raw.work.as_deref()),
    };
    let presence = raw
        .presence
        .as_ref()
        .map(|p| crate::bridge_presence::presence(c, p, &nats.subject_prefix));
    let nats = NatsSettings { presence, ..nats };
    crate::bridge_work::check_exports(c, &nats.work, &nats.export, &at);
    if nats.export.is_empty()
        && nats.import.is_empty()
        && nats.presence.is_none()
        && nats.work.is_empty()
        && !crate::bridge_requests::any(&nats)
    {
        c.error(
            &at,
            "`bridge.nats` exports and imports nothing",
            "list the local topics to publish to NATS under `export:` and the ones to \
             receive under `import:`, for example `export: [\"sensor.>\"]` (or the \
             requests to answer under `serve:` and to send under `ask:`)",
        );
    }
    Some(BridgeSettings { nats })
}

/// `url`: a string or a list of strings, each `nats://` or `tls://`.
fn servers(c: &mut Checker, raw: Option<&Spanned<Value>>, section: &Location) -> Vec<String> {
    let Some(raw) = raw else {
        c.error(
            section,
            "`bridge.nats` has no `url`",
            "add `url: nats://127.0.0.1:4222` (or a list of the cluster's servers)",
        );
        return Vec::new();
    };
    let value = c.json(raw);
    let urls: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let mut servers = Vec::new();
    for url in urls {
        match url.as_str().map(str::trim) {
            Some(text) if userinfo(text).is_some() => c.error(
                &raw.referenced,
                format!(
                    "`bridge.nats.url` carries credentials (`{}`), which the NATS client \
                     ignores and a log line would show",
                    without_userinfo(text)
                ),
                "drop them from the URL and write them in `auth`, from the environment: \
                 `auth: {user: app, password: \"${NATS_PASSWORD}\"}` or \
                 `auth: {token: \"${NATS_TOKEN}\"}`",
            ),
            Some(text) if text.starts_with("nats://") || text.starts_with("tls://") => {
                servers.push(text.to_owned());
            }
            _ => c.error(
                &raw.referenced,
                format!(
                    "`bridge.nats.url` must be a `nats://host:port` or `tls://host:port` URL, found {}",
                    url.as_str()
                        .map_or_else(|| show(url), |t| format!("`{}`", without_userinfo(t)))
                ),
                "write for example `url: nats://127.0.0.1:4222`, or a list for a cluster",
            ),
        }
    }
    if servers.is_empty() && !matches!(&value, Value::Array(a) if !a.is_empty()) {
        c.error(
            &raw.referenced,
            "`bridge.nats.url` names no server",
            "write for example `url: nats://127.0.0.1:4222`",
        );
    }
    servers
}

/// The `user:password@` or `token@` part of a URL, if it has one.
fn userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map(|(info, _)| info)
}

/// `url` with its credentials, if any, shown as `***`: safe to print.
fn without_userinfo(url: &str) -> String {
    match userinfo(url) {
        Some(info) => url.replacen(&format!("{info}@"), "***@", 1),
        None => url.to_owned(),
    }
}

/// `subject_prefix`: NATS subject tokens without wildcards.
fn subject_prefix(c: &mut Checker, raw: &Spanned<String>) -> String {
    let Some(text) = c.string(raw) else {
        return DEFAULT_SUBJECT_PREFIX.to_owned();
    };
    let text = text.trim().to_owned();
    let valid = !text.is_empty()
        && text.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        });
    if valid {
        return text;
    }
    c.error(
        &raw.referenced,
        format!(
            "`bridge.nats.subject_prefix` must be dot-separated tokens of letters, digits, `-` \
             and `_`, found `{}`",
            text.escape_debug()
        ),
        "write for example `subject_prefix: orch.demo` (events travel as `orch.demo.<topic>`)",
    );
    DEFAULT_SUBJECT_PREFIX.to_owned()
}

/// A credential: its expanded value (remembered for scrubbing), `None` when
/// empty (a `${VAR:-}` left unset).
fn secret(c: &mut Checker, value: Option<&Spanned<String>>) -> Option<String> {
    let text = c.string(value?)?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return None;
    }
    c.secrets.push(text.clone());
    Some(text)
}

fn auth(c: &mut Checker, raw: Option<&RawAuth>, root: &std::path::Path) -> NatsAuth {
    let Some(raw) = raw else {
        return NatsAuth::None;
    };
    let token = secret(c, raw.token.as_ref());
    let password = secret(c, raw.password.as_ref());
    let nkey = secret(c, raw.nkey.as_ref());
    let user = raw
        .user
        .as_ref()
        .and_then(|u| c.string(u))
        .filter(|u| !u.trim().is_empty());
    let creds = raw
        .creds
        .as_ref()
        .and_then(|path| existing_file(c, "bridge.nats.auth.creds", path, root));
    let chosen = [
        token.is_some(),
        user.is_some() || password.is_some(),
        nkey.is_some(),
        creds.is_some(),
    ];
    if chosen.iter().filter(|&&set| set).count() > 1 {
        let at = [&raw.token, &raw.user, &raw.password, &raw.nkey, &raw.creds]
            .into_iter()
            .flatten()
            .map(|s| s.referenced)
            .next_back()
            .unwrap_or(Location::UNKNOWN);
        c.error(
            &at,
            "`bridge.nats.auth` sets more than one way to authenticate",
            "give one of `token`, `user` with `password`, `nkey` or `creds`",
        );
    }
    match (token, user, password, nkey, creds) {
        (Some(token), ..) => NatsAuth::Token(token),
        (_, Some(user), Some(password), ..) => NatsAuth::UserPassword { user, password },
        (_, Some(_), None, ..) | (_, None, Some(_), ..) => {
            let at = raw
                .user
                .as_ref()
                .or(raw.password.as_ref())
                .map_or(Location::UNKNOWN, |s| s.referenced);
            c.error(
                &at,
                "`bridge.nats.auth` needs both `user` and `password`",
                "give both, or use `token`, `nkey` or `creds` instead",
            );
            NatsAuth::None
        }
        (.., Some(seed), _) => NatsAuth::NkeySeed(seed),
        (.., Some(creds)) => NatsAuth::CredsFile(creds),
        _ => NatsAuth::None,
    }
}

fn tls(c: &mut Checker, raw: &RawTls, root: &std::path::Path) -> NatsTls {
    let ca = raw
        .ca
        .as_ref()
        .and_then(|p| existing_file(c, "bridge.nats.tls.ca", p, root));
    let cert = raw
        .cert
        .as_ref()
        .and_then(|p| existing_file(c, "bridge.nats.tls.cert", p, root));
    let key = raw
        .key
        .as_ref()
        .and_then(|p| existing_file(c, "bridge.nats.tls.key", p, root));
    let client = match (cert, key, &raw.cert, &raw.key) {
        (Some(cert), Some(key), ..) => Some((cert, key)),
        (_, _, Some(at), None) | (_, _, None, Some(at)) => {
            c.error(
                &at.referenced,
                "`bridge.nats.tls` needs both `cert` and `key` for a client certificate",
                "give both files, or neither",
            );
            None
        }
        _ => None,
    };
    NatsTls { ca, client }
}

/// A path setting that must name an existing file (relative to `root`).
fn existing_file(
    c: &mut Checker,
    key: &str,
    raw: &Spanned<String>,
    root: &std::path::Path,
) -> Option<PathBuf> {
    let text = c.string(raw)?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let path = root.join(text);
    if path.is_file() {
        return Some(path);
    }
    c.error(
        &raw.referenced,
        format!("`{key}`: {} is not a file", path.display()),
        "give the path of the file, absolute or relative to the workspace root",
    );
    None
}
