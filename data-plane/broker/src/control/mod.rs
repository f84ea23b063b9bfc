//! The broker's link to the control plane: register, follow the topology
//! feed, and heartbeat the version this node has applied.

pub mod client;
pub mod follower;

pub use client::ControlClient;
pub use follower::{Follower, TopologyHandle};
