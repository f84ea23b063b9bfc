//! `sluice-protocol`: every type that crosses a process boundary between
//! Sluice's own processes, declared once so that the two sides cannot drift.
//!
//! - [`problem`]: the RFC 7807 problem document both planes answer with and
//!   the stable problem types (`https://sluice.dev/problems/<slug>`) clients
//!   branch on.

pub mod problem;

pub use problem::Problem;
