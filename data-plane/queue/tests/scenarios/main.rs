//! Scenario tests of the queue state machine, one module per concern.

mod backlog;
mod dead_letter;
mod groups;
mod priority;
mod publish;
mod refill;
mod snapshot;
mod support;
mod work_queue;
