//! Ordercast's vocabulary: identifiers, orders and their state machines,
//! event envelopes, audiences and JWT claims.
//!
//! Nothing here performs I/O; every other crate speaks in these types.

pub mod audience;
pub mod auth;
pub mod backoff;
pub mod chain;
pub mod event;
pub mod ids;
pub mod order;
pub mod order_scope;
pub mod policy;
pub mod receipt;
pub mod region;
pub mod request;
pub mod trace;

pub use audience::{Audience, Role, Viewer};
pub use chain::Chain;
pub use event::{Envelope, EventType};
pub use ids::{ChainId, ItemId, OrderId, RequestId, RestaurantId, Seq, SessionId, WaiterId};
pub use receipt::{Highest, Receipt};
pub use region::{Reach, Region};
pub use trace::TraceParent;
