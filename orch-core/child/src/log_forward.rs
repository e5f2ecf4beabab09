//! The child's own log events, forwarded to the orchestrator as `Log` frames
//! (which escapes, paces and prints them under the module's name).

use orch_wire::protocol::Frame;
use tracing_subscriber::Layer;

use crate::outgoing::Outgoing;

/// Forwards every log event of the child to the parent as a `Log` frame.
pub(crate) struct LogForward(pub(crate) Outgoing);

impl<S: tracing::Subscriber> Layer<S> for LogForward {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                if field.name() == "message" {
                    let _ = write!(self.0, "{value:?}");
                } else {
                    let _ = write!(self.0, " {}={value:?}", field.name());
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => 1,
            tracing::Level::WARN => 2,
            tracing::Level::INFO => 3,
            tracing::Level::DEBUG => 4,
            tracing::Level::TRACE => 5,
        };
        self.0.send(&Frame::Log {
            level,
            message: message.0,
        });
    }
}
