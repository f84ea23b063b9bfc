//! The broker's link to the control plane: register, follow the topology
//! feed, heartbeat the version this node has applied, and the picture of
//! the topology ([`topology`]) every other room reads, kept up to date by
//! the feed's snapshots and changes ([`changes`]); [`convergence`] is the
//! loop the queue and partition hosts run on each new picture.

pub mod changes;
pub mod client;
pub mod convergence;
pub mod follower;
pub mod topology;

pub use client::ControlClient;
pub use follower::{Follower, TopologyHandle};
