//! Server-Sent Events (`text/event-stream`), parsed incrementally: the push
//! consume stream arrives in chunks that cut lines and UTF-8 sequences
//! anywhere, and a consumer must see each event as soon as its blank line
//! arrives.

/// One dispatched Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when the event named none.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last event id seen on the stream (`id:`), if any.
    pub id: Option<String>,
}

/// An incremental `text/event-stream` parser (the WHATWG rules): lines end
/// with CRLF, LF or CR, wherever the chunk boundaries fall; `field: value`
/// lines (one space after the colon dropped), comments (`:`) ignored, a
/// blank line dispatches the event unless it has no data.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The incomplete line carried over from the previous chunk.
    line: Vec<u8>,
    /// The previous chunk ended with CR: a LF opening the next one belongs to it.
    skip_lf: bool,
    /// Past the optional byte order mark at the very start.
    started: bool,
    event: String,
    data: String,
    last_id: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Parses `chunk`, appending every event it completes to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) {
        if !self.started {
            // Hold back a chunk too short to tell whether it opens with a BOM.
            const BOM: &[u8] = "\u{feff}".as_bytes();
            let seen = [self.line.as_slice(), chunk].concat();
            if seen.len() < BOM.len() && BOM.starts_with(&seen) {
                self.line = seen;
                return;
            }
            self.started = true;
            let rest = seen.strip_prefix(BOM).unwrap_or(&seen).to_vec();
            self.line.clear();
            return self.feed_lines(&rest, out);
        }
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        self.feed_lines(chunk, out);
    }

    fn feed_lines(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let mut rest = &chunk[end + 1..];
            if chunk[end] == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if self.line.is_empty() {
                self.line_done(&chunk[..end], out);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[..end]);
                self.line_done(&line, out);
            }
            chunk = rest;
        }
        self.line.extend_from_slice(chunk);
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            return self.dispatch(out);
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"id" if !value.contains('\0') => self.last_id = Some(value.into_owned()),
            // `retry` and unknown fields mean nothing here.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        out.push(SseEvent {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(text: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts {
            parser.feed(&text[from..cut], &mut out);
            from = cut;
        }
        parser.feed(&text[from..], &mut out);
        out
    }

    fn event(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.to_string(),
            data: data.to_string(),
            id: id.map(str::to_string),
        }
    }

    /// What the broker sends: a consumer event, keep-alive comments and
    /// message events with ids.
    const STREAM: &str = "event: consumer\ndata: {\"consumer\":\"bench-0\",\"prefetch\":100}\n\n\
        :\n\n\
        event: message\nid: r1\ndata: {\"receipt\":\"r1\",\"body\":\"é|xx\"}\n\n\
        event:message\r\nid:r2\r\ndata:{\"receipt\":\"r2\"}\r\n\r\n\
        data: first\rdata: second\r\r\
        data\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            event("consumer", r#"{"consumer":"bench-0","prefetch":100}"#, None),
            event("message", r#"{"receipt":"r1","body":"é|xx"}"#, Some("r1")),
            event("message", r#"{"receipt":"r2"}"#, Some("r2")),
            event("message", "first\nsecond", Some("r2")),
            event("message", "", Some("r2")),
        ]
    }

    #[test]
    fn parses_a_whole_stream() {
        assert_eq!(parse_in_pieces(STREAM.as_bytes(), &[]), expected());
    }

    #[test]
    fn parses_a_stream_split_anywhere() {
        let bytes = STREAM.as_bytes();
        // Every single cut (between CR and LF, inside the UTF-8 `é`, inside
        // field names), then every pair of cuts.
        for cut in 0..=bytes.len() {
            assert_eq!(parse_in_pieces(bytes, &[cut]), expected(), "cut at {cut}");
        }
        for first in 0..=bytes.len() {
            for second in first..=bytes.len() {
                assert_eq!(
                    parse_in_pieces(bytes, &[first, second]),
                    expected(),
                    "cuts at {first} and {second}"
                );
            }
        }
    }

    #[test]
    fn parses_a_stream_byte_by_byte() {
        let bytes = STREAM.as_bytes();
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(parse_in_pieces(bytes, &cuts), expected());
    }

    #[test]
    fn waits_for_the_blank_line() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.feed(b"event: message\ndata: {}\n", &mut out);
        assert!(out.is_empty());
        parser.feed(b"\n", &mut out);
        assert_eq!(out, vec![event("message", "{}", None)]);
    }

    #[test]
    fn skips_a_byte_order_mark_and_empty_events() {
        let text = "\u{feff}event: consumer\n\nid: x\n\n: comment\ndata: d\n\n";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(
                parse_in_pieces(bytes, &[cut]),
                vec![event("message", "d", Some("x"))],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_cr_at_a_chunk_end_then_more_lines() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.feed(b"data: a\r", &mut out);
        parser.feed(b"", &mut out);
        parser.feed(b"\n\r", &mut out);
        parser.feed(b"\ndata: b\n\n", &mut out);
        assert_eq!(
            out,
            vec![event("message", "a", None), event("message", "b", None)]
        );
    }
}
