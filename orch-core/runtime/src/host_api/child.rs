//! What the host serves for a module that runs in a child host process: its
//! publishes, requests and answers arrive as frames, already checked in the
//! child and checked again here against the very rules an in-process module
//! meets (a child may lie), plus `started`: whether this child was told to
//! start (a restarted child is initialized again while the module may
//! publish).

use std::time::Duration;

use super::ModuleHostCtx;
use crate::requests::ReplyRefused;

impl ModuleHostCtx {
    /// Publishes for the child of `generation`, under the rule of an
    /// in-process publish ([`ModuleHostCtx::check_may_send`]).
    pub(crate) fn publish_of_child(
        &self,
        generation: u32,
        started: bool,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), String> {
        self.publish_as_of(generation, started, topic, payload)
    }

    /// Serves request `id` of the child of `generation`, under the rule of an
    /// in-process request. A refusal is returned; the caller answers it with
    /// [`ModuleHostCtx::refuse_request_of_child`].
    pub(crate) fn request_of_child(
        &self,
        generation: u32,
        started: bool,
        request: (u64, &str),
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        let (id, topic) = request;
        self.check_may_send_as(generation, topic, started)?;
        self.requests
            .request(&self.requester(), id, topic, payload, timeout)
    }

    /// Answers the child's refused request `id` at once (see
    /// [`crate::requests::Requests::refuse`]): its module believes it sent
    /// the request and would otherwise wait for it in vain.
    pub(crate) fn refuse_request_of_child(
        &self,
        id: u64,
        topic: &str,
        timeout: Duration,
        why: &str,
    ) -> bool {
        self.requests
            .refuse(&self.requester(), id, topic, timeout, why)
    }

    /// Delivers the answer of the child of `generation` to request `id` of
    /// `reply_to`, under the rule of an in-process answer: not before start,
    /// and only to a request that was delivered to this module.
    pub(crate) fn reply_of_child(
        &self,
        generation: u32,
        started: bool,
        reply_to: &str,
        id: u64,
        payload: &[u8],
    ) -> Result<(), ReplyRefused> {
        self.check_may_answer_as(generation, started)
            .map_err(ReplyRefused::Forbidden)?;
        self.requests
            .reply(&self.requester(), reply_to, id, payload)
    }
}
