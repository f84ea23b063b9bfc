//! Scenario tests of the queue state machine, one module per concern.

mod dead_letter;
mod groups;
mod publish;
mod snapshot;
mod support;
mod work_queue;
