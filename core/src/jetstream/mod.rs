//! Pieces shared by the JetStream state machines ([`crate::stream`], the consumers) and
//! the API layer: nats-server's error values ([`ApiError`]), the
//! `io.nats.jetstream.api.v1.*` response envelope, and the wire formats of times
//! (RFC 3339 with nanoseconds, as Go's `time.Time` marshals) and byte fields (base64,
//! as Go's `[]byte` marshals).
//!
//! Durations in JetStream JSON are plain integers of nanoseconds (Go's
//! `time.Duration`), so they need no helper: configs keep them as `i64` ns. Times are
//! `i64` nanoseconds since the Unix epoch, always given by the caller (no clock here).
//!
//! ```
//! use weir_core::jetstream::{ApiError, api_response, format_rfc3339_nano};
//! let err = ApiError::stream_not_found();
//! let body = api_response::<()>("stream_info", None, Some(&err));
//! assert_eq!(
//!     std::str::from_utf8(&body).unwrap(),
//!     r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#
//! );
//! assert_eq!(format_rfc3339_nano(1_500_000_000), "1970-01-01T00:00:01.5Z");
//! ```

mod base64;
pub mod engine;
mod error;
mod time;

pub use base64::{decode_base64, encode_base64};
pub use error::ApiError;
pub use time::{
    NANOS_PER_SEC, ZERO_TIME, format_go_duration, format_rfc3339_nano, format_rfc3339_or_zero, parse_go_duration,
    parse_rfc3339, parse_rfc3339_or_zero, serde_opt_time, serde_opt_time_or_zero, serde_time, serde_time_or_zero,
};

use serde::Serialize;

/// Prefix of every API response's `type`.
pub const API_TYPE_PREFIX: &str = "io.nats.jetstream.api.v1.";

/// The response `type` for an API, e.g. `response_type("stream_info")` is
/// `io.nats.jetstream.api.v1.stream_info_response`.
pub fn response_type(api: &str) -> String {
    format!("{API_TYPE_PREFIX}{api}_response")
}

/// Build a response body as nats-server does (`ApiResponse` with the reply's fields
/// embedded): `{"type":"io.nats.jetstream.api.v1.<api>_response","error":{..}?, <body fields>}`.
/// `body` must serialise to a JSON object (its fields are spliced in after `type` and
/// `error`); `None` gives an envelope with no other fields.
pub fn api_response<T: Serialize>(api: &str, body: Option<&T>, error: Option<&ApiError>) -> Vec<u8> {
    // Spliced as bytes (not through a `serde_json::Map`, which sorts keys) so that the
    // fields keep nats-server's order: type, error, then the body's own order.
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut out, &response_type(api)).expect("string serialises");
    if let Some(e) = error {
        out.extend_from_slice(b",\"error\":");
        serde_json::to_writer(&mut out, e).expect("ApiError serialises");
    }
    if let Some(b) = body {
        let fields = serde_json::to_vec(b).expect("API bodies serialise");
        match fields.as_slice() {
            b"null" | b"{}" => {}
            [b'{', inner @ .., b'}'] => {
                out.push(b',');
                out.extend_from_slice(inner);
            }
            _ => panic!("API body for {api} is not a JSON object"),
        }
    }
    out.push(b'}');
    out
}

/// An error response with no other fields: `{"type":..,"error":{..}}`.
pub fn api_error_response(api: &str, error: &ApiError) -> Vec<u8> {
    api_response::<()>(api, None, Some(error))
}
