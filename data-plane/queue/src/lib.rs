//! Queue state machine (issue 4). Being built.
