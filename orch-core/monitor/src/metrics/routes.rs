//! What each request is answered: `/metrics`, `/healthz` and `/readyz` to a
//! GET (or HEAD), 404, 405 or 413 to anything else. A request body is never
//! read: a request that announces one is refused and its connection closed.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, TRANSFER_ENCODING};
use hyper::{Method, Response, StatusCode};
use orch_runtime::status::StatusBoard;
use prometheus_client::registry::Registry;

/// The Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// The routes and what they read.
pub(super) struct Routes {
    registry: Registry,
    board: StatusBoard,
}

impl Routes {
    /// Routes over the host's `registry` and status `board`.
    pub(super) fn new(registry: Registry, board: StatusBoard) -> Self {
        Self { registry, board }
    }

    /// The answer to `method path` with `headers`.
    pub(super) fn answer(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Response<Full<Bytes>> {
        if announces_body(headers) {
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                PLAIN_TEXT,
                "request bodies are not accepted here: send GET /metrics, /healthz or /readyz \
                 without one\n"
                    .into(),
            )
            .close();
        }
        if method != Method::GET && method != Method::HEAD {
            return respond(
                StatusCode::METHOD_NOT_ALLOWED,
                PLAIN_TEXT,
                "only GET is served\n".into(),
            );
        }
        match path {
            "/metrics" => {
                let mut text = String::new();
                match prometheus_client::encoding::prometheus_text::encode(
                    &mut text,
                    &self.registry,
                ) {
                    Ok(()) => respond(StatusCode::OK, PROMETHEUS_TEXT, text),
                    Err(_) => respond(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        PLAIN_TEXT,
                        "cannot encode the metrics\n".into(),
                    ),
                }
            }
            "/healthz" => respond(StatusCode::OK, PLAIN_TEXT, "ok\n".into()),
            "/readyz" if self.board.is_ready() => {
                respond(StatusCode::OK, PLAIN_TEXT, "ready\n".into())
            }
            "/readyz" => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN_TEXT,
                "not ready: app.started not published yet, or a module failed\n".into(),
            ),
            _ => respond(
                StatusCode::NOT_FOUND,
                PLAIN_TEXT,
                "not found: try /metrics, /healthz or /readyz\n".into(),
            ),
        }
    }
}

/// Whether the request says a body follows (a length other than 0, or a
/// transfer coding): none is ever read.
fn announces_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .any(|length| length.as_bytes().iter().any(|&b| b != b'0'))
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// Closing the connection after a response.
trait Close {
    fn close(self) -> Self;
}

impl Close for Response<Full<Bytes>> {
    fn close(mut self) -> Self {
        self.headers_mut()
            .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn routes() -> Routes {
        Routes::new(Registry::default(), StatusBoard::default())
    }

    #[test]
    fn a_request_that_announces_a_body_is_refused_and_closed() {
        for (name, value) in [
            (CONTENT_LENGTH, "1099511627776"),
            (CONTENT_LENGTH, "1"),
            (TRANSFER_ENCODING, "chunked"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(name.clone(), HeaderValue::from_static(value));
            let response = routes().answer(&Method::GET, "/metrics", &headers);
            assert_eq!(
                response.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "{name}: {value}"
            );
            assert_eq!(response.headers()[CONNECTION], "close");
        }
        let mut empty = HeaderMap::new();
        empty.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let response = routes().answer(&Method::GET, "/healthz", &empty);
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[test]
    fn routes_and_methods() {
        let none = HeaderMap::new();
        let status = |method: &Method, path: &str| routes().answer(method, path, &none).status();
        assert_eq!(status(&Method::GET, "/metrics"), StatusCode::OK);
        assert_eq!(status(&Method::HEAD, "/healthz"), StatusCode::OK);
        assert_eq!(
            status(&Method::GET, "/readyz"),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(&Method::GET, "/nope"), StatusCode::NOT_FOUND);
        assert_eq!(
            status(&Method::POST, "/metrics"),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
