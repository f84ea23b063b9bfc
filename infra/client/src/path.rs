//! Paths and query strings of API calls. Resource names are restricted to a
//! URL-safe charset by both planes, but ids and consumer names given by
//! callers need not be, so every segment and query value is percent-encoded.

use std::fmt::Write;

/// Appends `segment` to `path`, percent-encoding everything outside RFC
/// 3986's unreserved characters.
pub(crate) fn push_segment(path: &mut String, segment: &str) {
    path.push('/');
    encode_into(path, segment);
}

fn encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// A request path: fixed parts with [`Path::lit`], caller-given names with
/// [`Path::seg`] (encoded), then query parameters.
#[derive(Debug, Default)]
pub(crate) struct Path {
    text: String,
    has_query: bool,
}

impl Path {
    pub fn new(fixed: &str) -> Path {
        Path {
            text: fixed.to_string(),
            has_query: false,
        }
    }

    /// A caller-given segment, percent-encoded.
    pub fn seg(mut self, segment: &str) -> Path {
        push_segment(&mut self.text, segment);
        self
    }

    /// A fixed segment (`messages`, `partitions`, ...).
    pub fn lit(mut self, fixed: &str) -> Path {
        self.text.push('/');
        self.text.push_str(fixed);
        self
    }

    /// Appends `name=value` to the query string when `value` is set.
    pub fn query(mut self, name: &str, value: Option<impl std::fmt::Display>) -> Path {
        if let Some(value) = value {
            self.text.push(if self.has_query { '&' } else { '?' });
            self.has_query = true;
            self.text.push_str(name);
            self.text.push('=');
            encode_into(&mut self.text, &value.to_string());
        }
        self
    }

    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_values_are_encoded() {
        let path = Path::new("/v1/queues")
            .seg("orders.eu-1")
            .lit("consume")
            .query("prefetch", Some(5))
            .query("lease_ms", None::<u64>)
            .query("consumer", Some("worker #2/a"))
            .finish();
        assert_eq!(
            path,
            "/v1/queues/orders.eu-1/consume?prefetch=5&consumer=worker%20%232%2Fa"
        );
        assert_eq!(
            Path::new("/v1/api-keys").seg("a/b?").finish(),
            "/v1/api-keys/a%2Fb%3F"
        );
    }
}
