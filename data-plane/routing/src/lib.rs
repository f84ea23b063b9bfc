//! Exchange routing (issue 4). Being built.
