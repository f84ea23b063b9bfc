//! The protocols clients speak to a broker. Each front end translates its
//! wire into calls on the node's rooms (`admission`, `queue`, `stream`) and
//! their answers back; none holds domain logic, so another front end
//! (AMQP 0-9-1, WebSocket) is a sibling of [`http`] calling the same
//! operations.

pub mod http;
