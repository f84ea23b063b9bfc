//! The value of every produced record: the run's tag (8 characters), the
//! record's id (12 digits) and its produce request's send time (16 digits of
//! microseconds since the run's start), then `|`, padded with `x` to
//! `--size` bytes. The id is what the fetch phase verifies; the send time
//! gives the end-to-end latency with `--follow`; the tag tells this run's
//! records from older ones in a reused stream.

const TAG_LEN: usize = 8;
const ID_DIGITS: usize = 12;
const SENT_DIGITS: usize = 16;
/// Bytes before the padding (`--size` must be at least this).
pub const HEADER_LEN: usize = TAG_LEN + ID_DIGITS + SENT_DIGITS + 1;

/// What a value carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub id: u64,
    pub sent_micros: u64,
}

/// A fresh run tag.
pub fn tag() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(TAG_LEN)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

/// A value of `size` bytes (at least [`HEADER_LEN`]).
pub fn value(tag: &str, id: u64, sent_micros: u64, size: usize) -> String {
    let mut value = format!("{tag:.TAG_LEN$}{id:0ID_DIGITS$}{sent_micros:0SENT_DIGITS$}|");
    value.extend(std::iter::repeat_n('x', size.saturating_sub(value.len())));
    value
}

/// The stamp of a value this run (`tag`) produced; `None` for anything else.
pub fn parse(tag: &str, value: &str) -> Option<Stamp> {
    if value.get(..TAG_LEN)? != tag || value.as_bytes().get(HEADER_LEN - 1) != Some(&b'|') {
        return None;
    }
    let digits = |from: usize, len: usize| -> Option<u64> {
        let text = value.get(from..from + len)?;
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    Some(Stamp {
        id: digits(TAG_LEN, ID_DIGITS)?,
        sent_micros: digits(TAG_LEN + ID_DIGITS, SENT_DIGITS)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let tag = tag();
        assert_eq!(tag.len(), TAG_LEN);
        let v = value(&tag, 123_456, 9_876_543, 64);
        assert_eq!(v.len(), 64);
        assert_eq!(
            parse(&tag, &v),
            Some(Stamp {
                id: 123_456,
                sent_micros: 9_876_543
            })
        );
        // The header alone when the size is the minimum.
        assert_eq!(value(&tag, 1, 2, HEADER_LEN).len(), HEADER_LEN);
    }

    #[test]
    fn foreign_values_are_not_parsed() {
        let v = value("abcdefgh", 7, 8, 100);
        assert_eq!(parse("zzzzzzzz", &v), None);
        assert_eq!(parse("abcdefgh", "abcdefgh"), None);
        assert_eq!(parse("abcdefgh", &v.replace('7', "a")), None);
        assert_eq!(parse("abcdefgh", ""), None);
    }
}
