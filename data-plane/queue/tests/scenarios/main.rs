//! Scenario tests of the queue state machine, one module per concern.

mod support;
mod work_queue;
