//! `cargo orch tap --validate`: each event checked against the payload type
//! its publisher declares (typed topics), as the running orchestrator
//! reports the types of its modules' running generations.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use orch_operate::client;
use orch_operate::protocol::{Request, Response, TapEvent};
use orch_runtime::typing::{TopicTypes, validate::validate};

/// How often the modules' types are asked for again (a reload may change them).
const REFRESH: Duration = Duration::from_secs(2);

/// What one event came to.
pub enum Verdict {
    /// Its publisher does not type its topic.
    Untyped,
    /// The orchestrator could not be asked for its modules' types.
    Unknown,
    /// It fits the type (named).
    Fits(String),
    /// It does not: the type, then each field and problem.
    Breaks(String, Vec<String>),
}

impl Verdict {
    /// One short text for the tap's line.
    pub fn text(&self) -> String {
        match self {
            Self::Untyped => "untyped".to_owned(),
            Self::Unknown => "types unknown: the orchestrator did not say".to_owned(),
            Self::Fits(name) => format!("fits {name}"),
            Self::Breaks(name, problems) => format!("DOES NOT FIT {name}: {}", problems.join("; ")),
        }
    }

    /// As JSON, for `--json`.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Self::Untyped => serde_json::json!({"typed": false}),
            Self::Unknown => serde_json::json!({"typed": null}),
            Self::Fits(name) => serde_json::json!({"typed": true, "type": name, "fits": true}),
            Self::Breaks(name, problems) => serde_json::json!({
                "typed": true, "type": name, "fits": false, "problems": problems
            }),
        }
    }
}

/// The modules' types, refreshed now and then.
pub struct Validator<'a> {
    socket: &'a Path,
    types: HashMap<String, TopicTypes>,
    fetched: Option<Instant>,
    /// The last time it asked, the orchestrator answered.
    fetched_ok: bool,
}

impl<'a> Validator<'a> {
    /// A validator asking the orchestrator at `socket`.
    pub fn new(socket: &'a Path) -> Self {
        Self {
            socket,
            types: HashMap::new(),
            fetched: None,
            fetched_ok: false,
        }
    }

    fn refresh(&mut self) {
        if self.fetched.is_some_and(|at| at.elapsed() < REFRESH) {
            return;
        }
        self.fetched = Some(Instant::now());
        match client::send(self.socket, &Request::Status, Duration::from_secs(2)) {
            Ok(Response::Status(report)) => {
                self.fetched_ok = true;
                self.types = report
                    .modules
                    .into_iter()
                    .filter_map(|m| Some((m.name, m.types?)))
                    .collect();
            }
            _ => self.fetched_ok = !self.types.is_empty(),
        }
    }

    /// `event` against the type its publisher declares for its topic.
    pub fn verdict(&mut self, event: &TapEvent) -> Verdict {
        self.refresh();
        let declared = event
            .source
            .as_ref()
            .filter(|_| event.origin.is_none())
            .and_then(|source| self.types.get(source))
            .and_then(|types| types.published(&event.topic));
        let Some((_, schema)) = declared else {
            return match self.fetched_ok {
                true => Verdict::Untyped,
                false => Verdict::Unknown,
            };
        };
        let name = TopicTypes::type_name(schema).to_owned();
        let payload: serde_json::Value = match serde_json::from_str(&event.payload) {
            Ok(payload) => payload,
            Err(e) => return Verdict::Breaks(name, vec![format!("not JSON: {e}")]),
        };
        let problems: Vec<String> = validate(&payload, schema)
            .into_iter()
            .map(|m| match m.field.as_str() {
                "" => m.problem,
                field => format!("`{field}` {}", m.problem),
            })
            .collect();
        if problems.is_empty() {
            Verdict::Fits(name)
        } else {
            Verdict::Breaks(name, problems)
        }
    }
}
