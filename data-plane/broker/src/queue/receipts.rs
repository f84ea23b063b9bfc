//! Sealed receipts. The queue state machine names a delivery by
//! `<seq>-<delivery>` (message sequence, delivery count): guessable, so a
//! client could settle messages it was never given. Receipts leave the
//! broker sealed — `<seq>-<delivery>.<mac>`, the MAC an HMAC-SHA256 over the
//! queue's group id and the receipt, keyed from the node key every broker
//! shares — so only receipts the broker issued, for that very queue, come
//! back in (like SQS receipt handles). The stale-delivery check stays the
//! state machine's.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use sluice_queue::Receipt;
use subtle::ConstantTimeEq;

use crate::error::{BrokerError, BrokerResult};

/// Bytes of the MAC a receipt carries (hex-encoded, so twice as many chars).
const MAC_BYTES: usize = 12;

/// Seals and opens the receipts of every queue on this broker.
#[derive(Clone)]
pub struct ReceiptSeal {
    key: [u8; 32],
}

impl ReceiptSeal {
    /// A seal keyed from the node key (the same on every broker, so a
    /// receipt opens wherever the queue is served).
    pub fn new(node_key: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"sluice receipts v1\0");
        hasher.update(node_key.as_bytes());
        ReceiptSeal {
            key: hasher.finalize().into(),
        }
    }

    fn mac(&self, group_id: &str, receipt: &Receipt) -> [u8; MAC_BYTES] {
        // An HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(group_id.as_bytes());
        mac.update(b"/");
        mac.update(receipt.to_string().as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0; MAC_BYTES];
        out.copy_from_slice(&full[..MAC_BYTES]);
        out
    }

    /// The receipt a client gets for `receipt` of the queue `group_id`.
    pub fn seal(&self, group_id: &str, receipt: Receipt) -> String {
        format!("{receipt}.{}", hex::encode(self.mac(group_id, &receipt)))
    }

    /// The receipt inside `sealed`, if this broker sealed it for `group_id`;
    /// else a problem naming `field`.
    pub fn open(&self, group_id: &str, field: &str, sealed: &str) -> BrokerResult<Receipt> {
        let invalid = || {
            BrokerError::validation(
                field,
                "receipt",
                format!("{sealed:?} is not a receipt this queue issued"),
            )
        };
        let (plain, mac) = sealed.split_once('.').ok_or_else(invalid)?;
        let receipt: Receipt = plain.parse().map_err(|_| invalid())?;
        let mac = hex::decode(mac).map_err(|_| invalid())?;
        if mac.len() != MAC_BYTES || !bool::from(mac.ct_eq(&self.mac(group_id, &receipt))) {
            return Err(invalid());
        }
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(seq: u64, delivery: u32) -> Receipt {
        format!("{seq}-{delivery}").parse().expect("receipt")
    }

    #[test]
    fn only_receipts_sealed_for_the_queue_open() {
        let seal = ReceiptSeal::new("node key");
        let sealed = seal.seal("q1", receipt(7, 2));
        assert_eq!(
            seal.open("q1", "receipt", &sealed).ok(),
            Some(receipt(7, 2))
        );
        // Another broker with the same node key opens it too.
        let other_broker = ReceiptSeal::new("node key");
        assert!(other_broker.open("q1", "receipt", &sealed).is_ok());
        for forged in [
            "7-2".to_string(),
            sealed.replace("7-2", "8-2"),
            sealed.replace("7-2", "7-3"),
            format!("{sealed}00"),
            "7-2.zz".to_string(),
            String::new(),
        ] {
            assert!(seal.open("q1", "receipt", &forged).is_err(), "{forged}");
        }
        assert!(
            seal.open("q2", "receipt", &sealed).is_err(),
            "another queue"
        );
        let other_cluster = ReceiptSeal::new("another node key");
        assert!(other_cluster.open("q1", "receipt", &sealed).is_err());
    }
}
