//! Metadata read back from the log (issue 21).
//!
//! A plain message of the compact backlog keeps no message id, routing key
//! or headers in memory; whatever the state machine reports about it (a
//! delivery, a peek, a dead letter, a redrive) says so with
//! [`MessageMeta::in_log`]. The broker reads the message's publish entry
//! anyway, for the body, and completes the output from the
//! [`PublishMessage`] found there with these functions — outside the state
//! machine, which stays free of I/O.

use crate::message::{MessageMeta, MessageView, PublishMessage};
use crate::output::{DeadLetter, Delivery, Redriven};

impl MessageMeta {
    /// Fill in what was left in the log from `published`, the message as
    /// its publish entry carries it. Does nothing when nothing was left.
    pub fn fill_from(&mut self, published: &PublishMessage) {
        if !self.in_log {
            return;
        }
        self.message_id = published.message_id.clone();
        self.routing_key = published.routing_key.clone();
        self.headers = published.headers.clone();
        self.group = published.group.clone();
        // A plain message had no death history when published; any death
        // recorded since is the state machine's and already in `deaths`.
        if self.deaths.is_empty() {
            self.deaths = published.deaths.clone();
        }
        self.in_log = false;
    }
}

impl Delivery {
    pub fn fill_from(&mut self, published: &PublishMessage) {
        self.meta.fill_from(published);
    }
}

impl MessageView {
    pub fn fill_from(&mut self, published: &PublishMessage) {
        self.meta.fill_from(published);
    }
}

impl Redriven {
    pub fn fill_from(&mut self, published: &PublishMessage) {
        self.message.fill_from(published);
    }
}

impl DeadLetter {
    /// Also sets the target's routing key when it is the message's own
    /// (no `dead_letter_routing_key`), which the state machine did not know.
    pub fn fill_from(&mut self, published: &PublishMessage) {
        if !self.meta.in_log {
            return;
        }
        self.meta.fill_from(published);
        if self.routing_key_from_message
            && let Some(target) = &mut self.target
        {
            target.routing_key = self.meta.routing_key.clone();
        }
        self.routing_key_from_message = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::BodyRef;

    #[test]
    fn only_what_was_left_in_the_log_is_filled() {
        let published = PublishMessage {
            message_id: Some("id".into()),
            routing_key: "rk".into(),
            headers: [("h".to_string(), "v".to_string())].into(),
            ..PublishMessage::new(
                BodyRef {
                    log_index: 3,
                    slot: 1,
                },
                5,
            )
        };
        let mut meta = MessageMeta {
            message_id: None,
            size: 5,
            routing_key: String::new(),
            headers: Default::default(),
            group: None,
            priority: None,
            published_at_ms: 7,
            expires_at_ms: None,
            deaths: Vec::new(),
            in_log: false,
        };
        let kept = meta.clone();
        meta.fill_from(&published);
        assert_eq!(meta, kept, "a message kept whole is left alone");
        meta.in_log = true;
        meta.fill_from(&published);
        assert_eq!(meta.message_id.as_deref(), Some("id"));
        assert_eq!(meta.routing_key, "rk");
        assert_eq!(meta.headers.len(), 1);
        assert!(!meta.in_log);
    }
}
