//! `metrics:` and `notify:` in main.yaml: defaults, full sections, and every
//! mistake named at its line.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

const MODULES: &str = "modules:\n  - name: mod-a\n";
const SLACK: &str = "https://hooks.slack.com/services/T000/B000/XXXXsecret";

fn alert_env(name: &str) -> Option<String> {
    (name == "ALERT_URL").then(|| SLACK.to_owned())
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

#[test]
fn without_the_sections_there_is_no_endpoint_and_no_alert() {
    let config = Fixture::with(None, Some(MODULES)).load();
    assert_eq!(config.main.metrics, None);
    assert_eq!(config.main.notify, NotifySettings { webhook: None });
    assert_eq!(config.main.notify, NotifySettings::default());
    let config = Fixture::with(Some("metrics: {}\nnotify: {}\n"), Some(MODULES)).load();
    assert_eq!(
        config.main.metrics,
        Some(MetricsSettings {
            listen: DEFAULT_METRICS_LISTEN
        })
    );
    assert_eq!(DEFAULT_METRICS_LISTEN, addr("127.0.0.1:9464"));
    assert_eq!(config.main.notify.webhook, None);
}

#[test]
fn the_full_sections_are_read() {
    let main = "\
metrics:
  listen: \"[::1]:9100\"
notify:
  webhook:
    url: ${ALERT_URL}
    events: [module.failed, \"app.>\", orders.*, module.failed]
    timeout: 2s
    retries: 0
    queue: 1000
";
    let config = Fixture::with(Some(main), Some(MODULES))
        .load_env(&alert_env)
        .expect("valid");
    assert_eq!(
        config.main.metrics.map(|m| m.listen),
        Some(addr("[::1]:9100"))
    );
    let webhook = config.main.notify.webhook.expect("webhook");
    assert_eq!(
        webhook,
        WebhookSettings {
            url: SLACK.to_owned(),
            events: vec!["module.failed".into(), "app.>".into(), "orders.*".into()],
            timeout: Duration::from_secs(2),
            retries: 0,
            queue: 1000,
        }
    );
    let debug = format!("{webhook:?}");
    assert!(debug.contains("\"https://hooks.slack.com/***\""), "{debug}");
    assert!(
        !debug.contains("XXXX") && !debug.contains("services"),
        "{debug}"
    );
    assert_eq!(webhook.redacted_url(), "https://hooks.slack.com/***");
}

#[test]
fn a_webhook_with_only_a_url_takes_the_defaults_and_the_url_is_a_secret() {
    let main = "notify:\n  webhook:\n    url: ${ALERT_URL}\n";
    let config = Fixture::with(Some(main), Some(MODULES))
        .load_env(&alert_env)
        .expect("valid");
    assert!(
        config.secrets.contains(&SLACK.to_owned()),
        "{:?}",
        config.secrets
    );
    assert!(!format!("{config:?}").contains("XXXX"));
    let webhook = config.main.notify.webhook.expect("webhook");
    assert_eq!(
        webhook.events,
        ["module.failed", "module.crashed", "module.reload_failed"]
    );
    assert_eq!(webhook.events, DEFAULT_WEBHOOK_EVENTS);
    assert_eq!(webhook.timeout, Duration::from_secs(5));
    assert_eq!((webhook.retries, webhook.queue), (5, 256));
}

#[test]
fn a_port_alone_listens_on_localhost() {
    for (listen, expected) in [
        ("9464", "127.0.0.1:9464"),
        ("\"9100\"", "127.0.0.1:9100"),
        ("0", "127.0.0.1:0"),
        ("0.0.0.0:9464", "0.0.0.0:9464"),
        ("${METRICS_LISTEN:-}", "127.0.0.1:9464"),
    ] {
        let main = format!("metrics:\n  listen: {listen}\n");
        let config = Fixture::with(Some(&main), Some(MODULES)).load();
        assert_eq!(
            config.main.metrics.map(|m| m.listen),
            Some(addr(expected)),
            "{listen}"
        );
    }
}

#[test]
fn a_bad_listen_address_is_reported_at_its_line() {
    let fixture = Fixture::with(Some("metrics:\n  listen: localhost:9464\n"), Some(MODULES));
    let errors = fixture.errors();
    assert_eq!(errors.0.len(), 1, "{errors}");
    let error = &errors.0[0];
    assert_eq!((error.line, error.column), (Some(2), Some(11)));
    assert_eq!(
        error.message,
        "`metrics.listen`: `localhost:9464` is not an IP address with a port"
    );
    assert!(
        error.hint.contains("`0.0.0.0:9464` (every interface)"),
        "{}",
        error.hint
    );
    for (listen, message) in [
        ("70000", "`metrics.listen`: port 70000 is above 65535"),
        ("127.0.0.1", "`metrics.listen`: `127.0.0.1` has no port"),
        (
            "[a, b]",
            "`metrics.listen`: expected an address, found a list",
        ),
    ] {
        let fixture = Fixture::with(
            Some(&format!("metrics:\n  listen: {listen}\n")),
            Some(MODULES),
        );
        assert_eq!(fixture.errors().0[0].message, message, "{listen}");
    }
}

#[test]
fn a_bad_url_is_reported_without_quoting_it() {
    let main = "notify:\n  webhook:\n    url: https://hooks.example.com:99999/T0/secret-path\n";
    let fixture = Fixture::with(Some(main), Some(MODULES));
    let text = fixture.error();
    assert!(
        text.starts_with(&format!(
            "{}:3:10: `notify.webhook.url` is not a webhook URL: its port is not a number from 1 to 65535",
            fixture.file("main.yaml")
        )),
        "{text}"
    );
    assert!(!text.contains("secret-path"), "{text}");
    for (url, reason) in [
        (
            "ftp://files.example.com/x",
            "its scheme is `ftp`, not http or https",
        ),
        (
            "hooks.slack.com/x",
            "it does not start with `http://` or `https://`",
        ),
        ("https:///x", "it has no host"),
    ] {
        let main = format!("notify:\n  webhook:\n    url: {url}\n");
        let errors = Fixture::with(Some(&main), Some(MODULES)).errors();
        assert_eq!(
            errors.0[0].message,
            format!("`notify.webhook.url` is not a webhook URL: {reason}"),
            "{url}"
        );
    }
}

#[test]
fn an_empty_url_names_the_variable_to_set() {
    let main = "notify:\n  webhook:\n    url: ${ALERT_URL:-}\n";
    let fixture = Fixture::with(Some(main), Some(MODULES));
    assert_eq!(
        fixture.error(),
        format!(
            "{}:3:10: `notify.webhook.url` is empty\n  hint: set ALERT_URL or remove notify.webhook",
            fixture.file("main.yaml")
        )
    );
    fixture.write("config/main.yaml", "notify:\n  webhook:\n    url: \"\"\n");
    assert!(
        fixture
            .error()
            .contains("hint: write the http:// or https:// URL")
    );
    fixture.write("config/main.yaml", "notify:\n  webhook:\n    retries: 1\n");
    let error = fixture.errors();
    assert_eq!(error.0[0].message, "`notify.webhook` has no `url`");
    assert_eq!(error.0[0].line, Some(3), "at the section");
    fixture.write(
        "config/main.yaml",
        "notify:\n  webhook:\n    url: ${ALERT_URL}\n",
    );
    assert!(
        fixture
            .error()
            .contains("environment variable `ALERT_URL` is not set"),
        "an unset variable without a default"
    );
}

#[test]
fn bad_event_patterns_are_reported_each_at_its_line() {
    let main = "\
notify:
  webhook:
    url: https://alerts.example.com/hook
    events:
      - module..failed
      - module.fialed
      - \"orders.>.x\"
";
    let errors = Fixture::with(Some(main), Some(MODULES)).errors();
    let found: Vec<(Option<u32>, &str)> = errors
        .0
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                Some(5),
                "`notify.webhook.events` entry `module..failed` is not a topic pattern: topic \
                 'module..failed' has an empty token; tokens are separated by single dots"
            ),
            (
                Some(6),
                "`notify.webhook.events`: the host sends no event `module.fialed`"
            ),
            (
                Some(7),
                "`notify.webhook.events` entry `orders.>.x` is not a topic pattern: topic \
                 pattern 'orders.>.x': `>` may only be the last token"
            ),
        ]
    );
    assert!(
        errors.0[1]
            .hint
            .starts_with("did you mean `module.failed`? "),
        "{}",
        errors.0[1].hint
    );
    let main = "notify:\n  webhook:\n    url: https://a.example/h\n    events: []\n";
    let errors = Fixture::with(Some(main), Some(MODULES)).errors();
    assert_eq!(
        errors.0[0].message,
        "`notify.webhook.events` is empty: no alert would ever be sent"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let fixture = Fixture::with(
        Some("notify:\n  webhook:\n    urll: https://a.example/h\n"),
        Some(MODULES),
    );
    let text = fixture.error();
    assert!(text.contains("main.yaml:3:5: unknown key `urll`"), "{text}");
    assert!(text.contains("did you mean `url`?"), "{text}");
    fixture.write("config/main.yaml", "metrics:\n  port: 9464\n");
    let text = fixture.error();
    assert!(text.contains("main.yaml:2:3: unknown key `port`"), "{text}");
    assert!(text.contains("known keys here: listen"), "{text}");
    fixture.write("config/main.yaml", "notify:\n  email: ops@example.com\n");
    assert!(fixture.error().contains("unknown key `email`"));
}

#[test]
fn retries_and_queue_must_be_in_range() {
    let main = "\
notify:
  webhook:
    url: https://a.example/h
    timeout: 0s
    retries: 21
    queue: 0
";
    let errors = Fixture::with(Some(main), Some(MODULES)).errors();
    let found: Vec<(Option<u32>, &str)> = errors
        .0
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (Some(4), "`notify.webhook.timeout` is zero"),
            (
                Some(5),
                "`notify.webhook.retries` must be a whole number from 0 to 20, found `21`"
            ),
            (
                Some(6),
                "`notify.webhook.queue` must be a whole number from 1 to 100000, found `0`"
            ),
        ]
    );
    let main =
        "notify:\n  webhook:\n    url: https://a.example/h\n    retries: 20\n    queue: 100000\n";
    let webhook = Fixture::with(Some(main), Some(MODULES))
        .load()
        .main
        .notify
        .webhook
        .expect("webhook");
    assert_eq!((webhook.retries, webhook.queue), (20, 100_000));
}

#[test]
fn an_environment_can_add_the_webhook_and_move_the_endpoint() {
    let fixture = Fixture::with(Some("metrics:\n  listen: 9464\n"), Some(MODULES));
    fixture.write(
        "config/prod/main.yaml",
        "metrics: {listen: \"0.0.0.0:9464\"}\nnotify:\n  webhook:\n    url: ${ALERT_URL}\n    retries: 99\n",
    );
    let errors = fixture.load_in("prod", &alert_env).expect_err("retries");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(
        errors.0[0].file,
        fixture.config_dir().join("prod/main.yaml")
    );
    assert_eq!(errors.0[0].line, Some(5));
    fixture.write(
        "config/prod/main.yaml",
        "metrics: {listen: \"0.0.0.0:9464\"}\nnotify:\n  webhook:\n    url: ${ALERT_URL}\n",
    );
    let config = fixture.load_in("prod", &alert_env).expect("valid");
    assert_eq!(
        config.main.metrics.map(|m| m.listen),
        Some(addr("0.0.0.0:9464"))
    );
    assert!(config.secrets.contains(&SLACK.to_owned()));
}

#[test]
fn the_shipped_examples_are_valid_once_uncommented() {
    let shipped = include_str!("../../../../config/main.yaml");
    let start = shipped.find("\n# metrics:").expect("metrics example");
    let examples: String = shipped[start..]
        .lines()
        .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
        .collect();
    let config = Fixture::with(Some(&examples), Some(MODULES))
        .load_env(&alert_env)
        .expect("valid examples");
    assert_eq!(
        config.main.metrics.map(|m| m.listen),
        Some(DEFAULT_METRICS_LISTEN)
    );
    let webhook = config.main.notify.webhook.expect("webhook");
    assert_eq!(webhook.events, DEFAULT_WEBHOOK_EVENTS);
    assert_eq!((webhook.retries, webhook.queue), (5, 256));
}
