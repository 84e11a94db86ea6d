//! Live push: `GET /api/v1/events` (Server-Sent Events) and `GET /api/v1/ws` (WebSocket).
//!
//! Both carry the events of the bus ([`pdm_core::bus`]): readings, predictions, alarm events
//! and job progress. What a client receives is a [`Filter`] of topics, parsed and matched in
//! pdm-core; the handlers only speak the transports. A client that falls further behind than
//! `push.channel` events is told it lagged and dropped: publishing never waits for it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pdm_core::bus::{Filter, Next, Subscription, TopicError, Topics};
use pdm_core::Shutdown;
use serde::Deserialize;
use serde_json::json;

use crate::config::PushConfig;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::QueryParams;
use crate::metrics::{ClientGuard, DropReason, PushMetrics, Transport};
use crate::openapi::ErrorBody;
use crate::state::{AppState, PushState};

/// Largest WebSocket message (a command) taken from a client.
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// The close code of a client dropped for lagging.
pub const CLOSE_LAGGED: u16 = 4000;
/// The close code of a client dropped for answering no pings.
pub const CLOSE_UNRESPONSIVE: u16 = 4001;
/// The close code when the server stops ("going away").
const CLOSE_GOING_AWAY: u16 = 1001;

/// The push routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events", get(events))
        .route("/ws", get(ws))
}

fn topic_error(e: TopicError) -> ApiError {
    let field = e.field.clone();
    ApiError::bad_request(e.to_string()).with_details(json!({ "field": field }))
}

/// Parameters of `GET /api/v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsParams {
    /// Comma-separated machine keys; absent: every machine.
    machines: Option<String>,
    /// Comma-separated kinds; absent: every kind.
    kinds: Option<String>,
    /// Where to resume, for clients that cannot send `Last-Event-ID`.
    last_event_id: Option<String>,
}

/// The id a client resumes after: the `Last-Event-ID` header (what a browser's `EventSource`
/// sends when it reconnects), else the `last_event_id` parameter.
fn resume_point(headers: &HeaderMap, query: Option<&str>) -> ApiResult<Option<u64>> {
    let parse = |field: &str, v: &str| {
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "{field}: {:?} is not an event id (a whole number from an event's `id`)",
                v.chars().take(40).collect::<String>()
            ))
            .with_details(json!({ "field": field }))
        })
    };
    if let Some(h) = headers.get("last-event-id") {
        let v = h.to_str().map_err(|_| {
            ApiError::bad_request("Last-Event-ID: not an event id (not ASCII)")
                .with_details(json!({ "field": "Last-Event-ID" }))
        })?;
        return parse("Last-Event-ID", v);
    }
    match query {
        Some(v) => parse("last_event_id", v),
        None => Ok(None),
    }
}

/// `GET /api/v1/events`: the events passing `machines` and `kinds`, as SSE.
#[utoipa::path(get, path = "/events", tag = "live", params(EventsParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (sent by a reconnecting EventSource)"),
        ("ticket" = Option<String>, Query, description = "A push ticket from `POST /auth/ticket`, for a browser's EventSource (which cannot send a header)")),
    responses((status = 200, description = "A stream of server-sent events (`text/event-stream`) that stays open", content_type = "text/event-stream", body = String)))]
async fn events(
    State(push): State<PushState>,
    headers: HeaderMap,
    QueryParams(p): QueryParams<EventsParams>,
) -> ApiResult<impl IntoResponse> {
    let topics =
        Topics::from_csv(p.machines.as_deref(), p.kinds.as_deref()).map_err(topic_error)?;
    let after = resume_point(&headers, p.last_event_id.as_deref())?;
    let feed = SseFeed {
        _guard: push.metrics.connected(Transport::Sse),
        sub: push.bus.subscribe(after),
        filter: Filter::of(&topics),
        after,
        metrics: push.metrics.clone(),
        closing: push.settings.closing.clone(),
        done: false,
    };
    let stream = futures_util::stream::unfold(feed, SseFeed::next_event);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(push.settings.heartbeat)))
}

/// The state of one SSE stream.
struct SseFeed {
    /// Counts the client while the stream lives.
    _guard: ClientGuard,
    sub: Subscription,
    filter: Filter,
    after: Option<u64>,
    metrics: PushMetrics,
    closing: Option<Shutdown>,
    /// The stream said its last word (lagged).
    done: bool,
}

impl SseFeed {
    async fn next_event(mut self) -> Option<(Result<Event, Infallible>, SseFeed)> {
        if self.done {
            return None;
        }
        loop {
            let next = match self.closing.as_mut() {
                Some(closing) => tokio::select! {
                    next = self.sub.next() => next,
                    _ = closing.wait() => return None,
                },
                None => self.sub.next().await,
            };
            let event = match next {
                Next::Event(e) if self.filter.matches(&e) => Event::default()
                    .id(e.id.to_string())
                    .event(e.kind.as_str())
                    .data(&*e.data),
                Next::Event(_) => continue,
                Next::Missed { head } => Event::default()
                    .id(head.to_string())
                    .event("reset")
                    .data(reset_body(self.after, head).to_string()),
                Next::Lagged(n) => {
                    self.done = true;
                    self.metrics.dropped(Transport::Sse, DropReason::Lagged);
                    Event::default()
                        .event("lagged")
                        .data(lagged_body(n).to_string())
                }
                Next::Closed => return None,
            };
            self.metrics.sent(Transport::Sse);
            return Some((Ok(event), self));
        }
    }
}

fn reset_body(after: Option<u64>, head: u64) -> serde_json::Value {
    let after = after.map_or_else(|| "the id given".to_owned(), |a| a.to_string());
    json!({
        "last_event_id": head,
        "message": format!(
            "the events after {after} are no longer held (the replay buffer moved on, or the \
             id is from before a restart); reload the state over the REST API: the events \
             after {head} follow"
        ),
    })
}

fn lagged_body(missed: u64) -> serde_json::Value {
    json!({
        "missed": missed,
        "message": format!(
            "this client fell {missed} events behind and is dropped; reconnect with the last \
             id it received to resume"
        ),
    })
}

/// `GET /api/v1/ws`: a WebSocket that takes `subscribe` and `unsubscribe` commands.
#[utoipa::path(get, path = "/ws", tag = "live",
    params(("ticket" = Option<String>, Query, description = "A push ticket from `POST /auth/ticket`; or send a token in the first message")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; then `subscribe` and `unsubscribe` commands"),
        (status = 426, description = "Not a WebSocket upgrade request", body = ErrorBody)))]
async fn ws(
    State(push): State<PushState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(r) => {
            return ApiError::new(r.status(), ErrorCode::BadRequest, r.body_text()).into_response()
        }
    };
    upgrade
        .max_message_size(MAX_COMMAND_BYTES)
        .max_frame_size(MAX_COMMAND_BYTES)
        .on_upgrade(move |socket| WsClient::new(socket, push).run())
}

/// A command from a WebSocket client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Command {
    op: String,
    #[serde(default)]
    machines: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    /// Resume after this id (replayed from the buffer, or a `reset` first).
    after: Option<u64>,
}

/// A command answer's error, `{"error": {"code", "message", "details": {"field"}}}` as the
/// HTTP API answers.
fn command_error(field: Option<&str>, message: impl std::fmt::Display) -> String {
    let mut error = json!({ "code": ErrorCode::BadRequest, "message": message.to_string() });
    if let Some(field) = field {
        error["details"] = json!({ "field": field });
    }
    json!({ "error": error }).to_string()
}

/// What woke the connection's loop.
enum Input {
    Closing,
    Frame(Option<Result<Message, axum::Error>>),
    Bus(Next),
    Heartbeat,
}

struct WsClient {
    socket: WebSocket,
    push: PushState,
    filter: Filter,
    sub: Subscription,
    /// Pings sent since the client was last heard from.
    unanswered: u32,
}

impl WsClient {
    fn new(socket: WebSocket, push: PushState) -> WsClient {
        let sub = push.bus.subscribe(None);
        WsClient {
            socket,
            push,
            filter: Filter::none(),
            sub,
            unanswered: 0,
        }
    }

    /// How long one frame may take to leave: a client that does not read for several
    /// heartbeats is as gone as one that does not answer pings.
    fn send_limit(&self) -> Duration {
        self.push.settings.heartbeat * PushConfig::MISSED_PINGS
    }

    /// Sends a frame; false when the client is gone (or too slow to take it).
    async fn send(&mut self, msg: Message) -> bool {
        match tokio::time::timeout(self.send_limit(), self.socket.send(msg)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                self.push
                    .metrics
                    .dropped(Transport::WebSocket, DropReason::Unresponsive);
                false
            }
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.send(Message::Close(Some(frame))).await;
    }

    async fn run(mut self) {
        let _guard = self.push.metrics.connected(Transport::WebSocket);
        let mut closing = self.push.settings.closing.clone();
        let mut heartbeat = tokio::time::interval(self.push.settings.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            let input = tokio::select! {
                _ = async {
                    match closing.as_mut() {
                        Some(c) => c.wait().await,
                        None => std::future::pending().await,
                    }
                } => Input::Closing,
                frame = self.socket.recv() => Input::Frame(frame),
                next = self.sub.next() => Input::Bus(next),
                _ = heartbeat.tick() => Input::Heartbeat,
            };
            let go_on = match input {
                Input::Closing => {
                    self.close(CLOSE_GOING_AWAY, "server stopping").await;
                    false
                }
                Input::Frame(frame) => self.on_frame(frame).await,
                Input::Bus(next) => self.on_bus(next).await,
                Input::Heartbeat => self.on_heartbeat().await,
            };
            if !go_on {
                break;
            }
        }
    }

    async fn on_heartbeat(&mut self) -> bool {
        if self.unanswered >= PushConfig::MISSED_PINGS {
            self.push
                .metrics
                .dropped(Transport::WebSocket, DropReason::Unresponsive);
            self.close(CLOSE_UNRESPONSIVE, "no pong").await;
            return false;
        }
        self.unanswered += 1;
        self.send(Message::Ping(axum::body::Bytes::from_static(b"pdm")))
            .await
    }

    async fn on_bus(&mut self, next: Next) -> bool {
        let text = match next {
            Next::Event(e) if self.filter.matches(&e) => e.to_json(),
            Next::Event(_) => return true,
            Next::Missed { head } => {
                let mut body = reset_body(None, head);
                body["op"] = json!("reset");
                body.to_string()
            }
            Next::Lagged(n) => {
                self.push
                    .metrics
                    .dropped(Transport::WebSocket, DropReason::Lagged);
                let mut body = lagged_body(n);
                body["op"] = json!("lagged");
                if self.send(Message::Text(body.to_string().into())).await {
                    self.close(CLOSE_LAGGED, "lagged").await;
                }
                return false;
            }
            Next::Closed => {
                self.close(CLOSE_GOING_AWAY, "server stopping").await;
                return false;
            }
        };
        self.push.metrics.sent(Transport::WebSocket);
        self.send(Message::Text(text.into())).await
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, axum::Error>>) -> bool {
        let msg = match frame {
            Some(Ok(msg)) => msg,
            // Gone, or a protocol error (an oversized message among them): nothing to answer.
            None | Some(Err(_)) => return false,
        };
        // Whatever it sent, the client is alive.
        self.unanswered = 0;
        let answer = match msg {
            Message::Text(text) => self.command(&text),
            Message::Binary(_) => command_error(
                None,
                "binary frames are not commands; send a JSON text frame \
                 ({\"op\": \"subscribe\", \"machines\": [...], \"kinds\": [...]})",
            ),
            Message::Ping(_) | Message::Pong(_) => return true,
            Message::Close(_) => return false,
        };
        self.send(Message::Text(answer.into())).await
    }

    /// Applies one command; the answer to send.
    fn command(&mut self, text: &str) -> String {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cmd: Command = match serde_path_to_error::deserialize(de) {
            Ok(c) => c,
            Err(e) => {
                let path = e.path().to_string();
                let field = (path != ".").then_some(path.as_str());
                return command_error(field, format!("cannot read the command: {e}"));
            }
        };
        let topics = match Topics::from_lists(&cmd.machines, &cmd.kinds) {
            Ok(t) => t,
            Err(e) => return command_error(Some(&e.field), &e),
        };
        let op = match cmd.op.as_str() {
            "subscribe" => {
                self.filter.add(&topics);
                if let Some(after) = cmd.after {
                    // The replay and the live events after `after`, through the new filter.
                    self.sub = self.push.bus.subscribe(Some(after));
                }
                "subscribed"
            }
            "unsubscribe" => {
                if cmd.after.is_some() {
                    return command_error(Some("after"), "after: only subscribe resumes");
                }
                self.filter.remove(&topics);
                "unsubscribed"
            }
            other => {
                return command_error(
                    Some("op"),
                    format!(
                        "op: unknown op {:?}; the ops are subscribe and unsubscribe",
                        other.chars().take(40).collect::<String>()
                    ),
                )
            }
        };
        json!({ "op": op, "subscription": &self.filter, "after": cmd.after }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pdm_core::bus::PushEvent;

    use super::*;

    #[test]
    fn resume_prefers_the_header_and_names_the_field() {
        let mut h = HeaderMap::new();
        assert_eq!(resume_point(&h, Some("7")).ok(), Some(Some(7)));
        assert_eq!(resume_point(&h, None).ok(), Some(None));
        h.insert("last-event-id", "12".parse().expect("value"));
        assert_eq!(resume_point(&h, Some("7")).ok(), Some(Some(12)));
        let err = resume_point(&HeaderMap::new(), Some("x1")).expect_err("not a number");
        assert_eq!(err.code(), ErrorCode::BadRequest);
        h.insert("last-event-id", "-3".parse().expect("value"));
        let err = resume_point(&h, None).expect_err("negative");
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_frame_is_the_event() {
        let e = PushEvent {
            id: 5,
            kind: pdm_core::bus::PushKind::Alarm,
            machine: Some(pdm_core::MachineKey::new("pump-1").expect("key")),
            data: Arc::from(r#"{"a":1}"#),
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        assert_eq!(
            v,
            json!({"id": 5, "kind": "alarm", "machine": "pump-1", "data": {"a": 1}})
        );
    }
}

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(events, ws))]
pub struct Doc;
