//! What Ordercast's api and edge share over HTTP, so neither imports the
//! other: problem+json errors (the one catalogue of problem types),
//! extractors, where tokens come from and who may act on a restaurant,
//! request metrics and spans, and the server loop with its fast path for
//! event streams, its admission of connections and its deadlines.

pub mod admission;
pub mod auth;
pub mod cors;
pub mod deadline;
pub mod direct;
pub mod extract;
pub mod forwarding;
pub mod gzip;
pub mod layers;
pub mod problem;
pub mod server;
pub mod trace;
pub mod upgrade;

pub use admission::{Admission, AdmissionLimits, RefusedConnections, Slot};
pub use auth::{Caller, HasVerifier, StreamToken, Subscriber, authorize};
pub use direct::{EVENT_STREAM_ROUTE, WEBSOCKET_ROUTE, is_event_stream};
pub use problem::{FieldError, HttpError, PROBLEM_BASE, PostgresFailure, Problem, no_route};
pub use server::{OnStall, Port, ServerSettings, serve};
