//! A queue driven by hand: a log index and clock that move forward, and the
//! dead letters collected on the way.
//!
//! Like the broker, the harness keeps the log: a plain message's id,
//! routing key and headers are left there (issue 21), and every output is
//! completed from the publish entry (`fill_from`) before a test sees it.

use std::collections::BTreeMap;

use sluice_queue::{
    Applied, BodyRef, Command, ConsumerId, DeadLetter, Delivery, MessageView, NackAction,
    NackOutcome, PublishMessage, PublishResult, QueueError, QueueSettings, QueueState, Receipt,
    Refill, Reply, Seq, TimedCommand,
};

pub struct Harness {
    pub state: QueueState,
    pub log_index: u64,
    pub now: u64,
    pub dead: Vec<DeadLetter>,
    /// The log's publish entries: log index → the batch.
    pub published: BTreeMap<u64, Vec<PublishMessage>>,
}

pub fn settings(json: &str) -> QueueSettings {
    serde_json::from_str(json).expect("settings JSON")
}

/// A message with routing key `key`; the harness fills in its body ref.
pub fn msg(key: &str) -> PublishMessage {
    PublishMessage {
        message_id: None,
        body_ref: BodyRef {
            log_index: 0,
            slot: 0,
        },
        size: 10,
        routing_key: key.to_owned(),
        headers: Default::default(),
        group: None,
        delay_ms: None,
        expiration_ms: None,
        priority: None,
        deaths: Vec::new(),
        republished: false,
    }
}

pub fn c(id: &str) -> ConsumerId {
    ConsumerId::from(id)
}

impl Harness {
    pub fn new(json: &str) -> Self {
        Self {
            state: QueueState::new(settings(json)),
            log_index: 0,
            now: 1_000,
            dead: Vec::new(),
            published: BTreeMap::new(),
        }
    }

    pub fn at(&mut self, now: u64) -> &mut Self {
        self.now = now;
        self
    }

    pub fn run(&mut self, command: Command) -> Result<Reply, QueueError> {
        self.log_index += 1;
        if let Command::Publish { messages } = &command {
            self.published.insert(self.log_index, messages.clone());
        }
        let Applied {
            mut result,
            mut dead_letters,
        } = self
            .state
            .apply(self.log_index, TimedCommand::new(self.now, command));
        for dead in &mut dead_letters {
            if let Some(published) = self.publish_entry(dead.body_ref) {
                dead.fill_from(published);
            }
        }
        if let Ok(reply) = &mut result {
            self.fill_reply(reply);
        }
        self.dead.extend(dead_letters);
        self.state.check_invariants().expect("invariants");
        result
    }

    /// The message as its publish entry carries it.
    fn publish_entry(&self, body_ref: BodyRef) -> Option<&PublishMessage> {
        self.published
            .get(&body_ref.log_index)?
            .iter()
            .find(|message| message.body_ref == body_ref)
    }

    fn fill_reply(&self, reply: &mut Reply) {
        let deliveries = match reply {
            Reply::Received { deliveries } => deliveries,
            Reply::Acked { refilled, .. } => refilled,
            Reply::Redriven { messages } => {
                for redriven in messages {
                    if let Some(published) = self.publish_entry(redriven.message.body_ref) {
                        redriven.fill_from(published);
                    }
                }
                return;
            }
            _ => return,
        };
        for delivery in deliveries {
            if let Some(published) = self.publish_entry(delivery.body_ref) {
                delivery.fill_from(published);
            }
        }
    }

    /// `QueueState::peek`, completed from the log.
    pub fn peek(&self, max: usize) -> Vec<MessageView> {
        let mut views = self.state.peek(max);
        for view in &mut views {
            if let Some(published) = self.publish_entry(view.body_ref) {
                view.fill_from(published);
            }
        }
        views
    }

    pub fn publish(&mut self, mut messages: Vec<PublishMessage>) -> Vec<PublishResult> {
        for (slot, message) in messages.iter_mut().enumerate() {
            message.body_ref = BodyRef {
                log_index: self.log_index + 1,
                slot: slot as u32,
            };
        }
        match self.run(Command::Publish { messages }) {
            Ok(Reply::Published { results }) => results,
            other => panic!("publish: {other:?}"),
        }
    }

    /// Publish and return the seqs of the stored messages.
    pub fn publish_keys(&mut self, keys: &[&str]) -> Vec<Seq> {
        let results = self.publish(keys.iter().map(|key| msg(key)).collect());
        results
            .into_iter()
            .map(|result| match result {
                PublishResult::Stored { seq } => seq,
                other => panic!("not stored: {other:?}"),
            })
            .collect()
    }

    pub fn try_receive(&mut self, consumer: &str, max: u32) -> Result<Vec<Delivery>, QueueError> {
        self.run(Command::Receive {
            consumer: c(consumer),
            max_messages: max,
            lease_ms: None,
        })
        .map(|reply| match reply {
            Reply::Received { deliveries } => deliveries,
            other => panic!("receive: {other:?}"),
        })
    }

    pub fn receive(&mut self, consumer: &str, max: u32) -> Vec<Delivery> {
        self.try_receive(consumer, max).expect("receive")
    }

    pub fn ack(&mut self, receipts: &[Receipt]) -> Vec<Result<Seq, QueueError>> {
        self.ack_refilling(receipts, None).0
    }

    /// Ack, then refill `refill`'s window; the results and the refill.
    pub fn ack_refilling(
        &mut self,
        receipts: &[Receipt],
        refill: Option<Refill>,
    ) -> (Vec<Result<Seq, QueueError>>, Vec<Delivery>) {
        match self.run(Command::Ack {
            receipts: receipts.to_vec(),
            refill,
        }) {
            Ok(Reply::Acked { results, refilled }) => (results, refilled),
            other => panic!("ack: {other:?}"),
        }
    }

    pub fn nack(
        &mut self,
        receipt: Receipt,
        action: NackAction,
    ) -> Result<NackOutcome, QueueError> {
        self.run(Command::Nack { receipt, action })
            .map(|reply| match reply {
                Reply::Nacked { outcome } => outcome,
                other => panic!("nack: {other:?}"),
            })
    }

    pub fn tick(&mut self, now: u64) {
        self.now = now;
        self.run(Command::Tick).expect("tick");
    }

    pub fn keys(deliveries: &[Delivery]) -> Vec<&str> {
        deliveries
            .iter()
            .map(|delivery| delivery.meta.routing_key.as_str())
            .collect()
    }
}
