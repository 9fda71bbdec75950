//! A Server-Sent Events parser (WHATWG HTML, "Server-sent events", §9.2.6 "Interpreting an
//! event stream"), fed one line at a time so that it is a pure function of the text.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` type (`message` when absent).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen so far (it persists across events, as the spec says).
    pub id: Option<String>,
}

/// Longest `data` accepted for one event; a longer one is dropped (bounds memory against a
/// misbehaving server).
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// The parser's state between lines.
#[derive(Debug, Default)]
pub struct SseParser {
    event: String,
    data: String,
    has_data: bool,
    oversized: bool,
    /// The `id:` of the event being read: the last event id only once that event is
    /// dispatched (spec: the last event ID buffer), so that a stream cut inside an event is
    /// resumed before it, not after it.
    id_buffer: Option<String>,
    last_id: Option<String>,
}

impl SseParser {
    /// A parser with no last event id.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of the last event dispatched (what `Last-Event-ID` should carry on
    /// reconnect).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Drops the event being read (a line of it was too long to keep): it is not
    /// dispatched, but its id still counts as seen once it ends.
    pub fn drop_event(&mut self) {
        self.oversized = true;
        self.has_data = true;
    }

    /// Forgets the event half read when a connection ended (its fields, its id): the next
    /// connection sends it again whole, from after the last event dispatched.
    pub fn reset_event(&mut self) {
        self.event.clear();
        self.data.clear();
        self.has_data = false;
        self.oversized = false;
        self.id_buffer = self.last_id.clone();
    }

    /// Feeds one line (without or with its `\n` / `\r\n`); returns an event when the line
    /// is the blank line that ends one.
    pub fn push_line(&mut self, line: &str) -> Option<SseEvent> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    self.oversized = true;
                } else {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                }
                self.has_data = true;
            }
            // An id with a NUL is ignored (spec).
            "id" if !value.contains('\0') => self.id_buffer = Some(value.to_string()),
            // `retry` and unknown fields: the wallet's own backoff applies.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        self.last_id.clone_from(&self.id_buffer);
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        let had_data = std::mem::replace(&mut self.has_data, false);
        let oversized = std::mem::replace(&mut self.oversized, false);
        if !had_data || oversized {
            return None;
        }
        Some(SseEvent {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
        })
    }
}

/// Parses a whole text.
#[cfg(test)]
pub fn parse(text: &str) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    text.split_inclusive('\n')
        .filter_map(|line| parser.push_line(line))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_ids_comments_and_multiline_data() {
        let text = ": keep-alive\n\
                    id: 5:0\n\
                    data: {\"a\":1}\n\
                    \n\
                    event: transaction\r\n\
                    data:first\r\n\
                    data: second\r\n\
                    id: 5:1\r\n\
                    retry: 3000\r\n\
                    \r\n\
                    data: same id as before\n\
                    \n";
        let events = parse(text);
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "message".into(),
                    data: "{\"a\":1}".into(),
                    id: Some("5:0".into())
                },
                SseEvent {
                    event: "transaction".into(),
                    data: "first\nsecond".into(),
                    id: Some("5:1".into())
                },
                SseEvent {
                    event: "message".into(),
                    data: "same id as before".into(),
                    id: Some("5:1".into())
                },
            ]
        );
    }

    #[test]
    fn incomplete_and_empty_events_are_not_dispatched() {
        let mut parser = SseParser::new();
        // An id alone dispatches nothing but is remembered for the reconnect.
        assert_eq!(parser.push_line("id: 9:3"), None);
        assert_eq!(parser.push_line(""), None);
        assert_eq!(parser.last_id(), Some("9:3"));
        // An event cut off by a disconnect (no blank line) never comes out.
        assert!(parse("data: cut off\n").is_empty());
        // `data` with no colon is a field with an empty value.
        assert_eq!(parse("data\n\n")[0].data, "");
        // An id with NUL is ignored.
        let mut parser = SseParser::new();
        parser.push_line("id: a\0b");
        assert_eq!(parser.last_id(), None);
    }

    #[test]
    fn oversized_events_are_dropped_and_the_stream_goes_on() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let text = format!("data: {big}\ndata: more\n\ndata: next\n\n");
        let events = parse(&text);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "next");
    }

    /// An event's id is the last event id once the event is dispatched, not when its
    /// `id:` line arrives; a reset forgets the half-read event, id and all.
    #[test]
    fn the_last_id_moves_when_its_event_is_dispatched() {
        let mut parser = SseParser::new();
        parser.push_line("id: 1:0\n");
        parser.push_line("data: a\n");
        assert!(parser.push_line("\n").is_some());
        assert_eq!(parser.last_id(), Some("1:0"));
        parser.push_line("id: 1:1\n");
        parser.push_line("data: half\n");
        assert_eq!(parser.last_id(), Some("1:0"), "1:1 is not dispatched yet");
        parser.reset_event();
        parser.push_line("data: whole\n");
        let event = parser.push_line("\n").expect("an event");
        assert_eq!(event.data, "whole", "nothing of the half-read event");
        assert_eq!(
            event.id.as_deref(),
            Some("1:0"),
            "its own id was never given"
        );
        // An id-only block still moves the last id (spec).
        parser.push_line("id: 2:0\n");
        assert!(parser.push_line("\n").is_none());
        assert_eq!(parser.last_id(), Some("2:0"));
    }
}
