//! Tool calls read out of an answer while it is generated, so that a stream sends each call's
//! id and name as soon as they are known and its arguments as they are written (OpenAI's
//! streaming of `tool_calls`).
//!
//! The arguments are sent in the form the non-streamed answer gives them (serde_json's compact
//! form of the value: the model's whitespace dropped, each string and number written as
//! serde_json writes it), token by token, so the concatenation of a call's argument deltas is
//! exactly its `arguments` string. The final word is the parser's ([`super::parse_answer`] on
//! the whole text): the stream reconciles with it at the end (see `server::stream`).

use serde_json::Value;

use super::ToolFormat;
use super::json_scan::{JsonScan, Seen, Step, Token};

/// What a stream sends for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallDelta {
    /// The `k`-th call begins: its name, and the id the model wrote for it if it did so
    /// before its arguments.
    Head {
        k: usize,
        name: String,
        id: Option<String>,
    },
    /// The next piece of the `k`-th call's arguments.
    Args { k: usize, piece: String },
}

#[derive(Debug, Default)]
struct Call {
    name: Option<String>,
    id: Option<String>,
    /// Arguments read but not sent (before the head could be sent).
    buffered: String,
    /// Arguments sent.
    sent: String,
    head_sent: bool,
}

/// The arguments of the open call are being read: an object or array opened inside the call
/// object at scanner depth `depth` (it ends when the depth comes back there).
#[derive(Debug)]
struct Capture {
    depth: usize,
}

/// The tool calls of one answer, read as its text arrives.
#[derive(Debug)]
pub struct CallStream {
    format: ToolFormat,
    text: String,
    /// Bytes of `text` consumed (by the scanner or the search for a marker).
    pos: usize,
    scan: Option<JsonScan>,
    /// A marker was read: the next document starts after whitespace.
    armed: bool,
    /// No further call can start (plain text, or the document ended).
    closed: bool,
    calls: Vec<Call>,
    /// The open call and the scanner depth of its object.
    open: Option<(usize, usize)>,
    capture: Option<Capture>,
}

/// The marker a call (or the list of calls) follows, per format.
fn marker(format: ToolFormat) -> Option<&'static str> {
    match format {
        ToolFormat::Hermes => Some("<tool_call>"),
        ToolFormat::Mistral => Some("[TOOL_CALLS]"),
        ToolFormat::Llama3 | ToolFormat::Generic | ToolFormat::Harmony => None,
    }
}

/// Whether a value at `path` is a call object in `format`.
fn is_call(format: ToolFormat, path: &[Step]) -> bool {
    match format {
        ToolFormat::Hermes | ToolFormat::Llama3 => path.is_empty(),
        ToolFormat::Mistral => matches!(path, [Step::Index(_)]),
        ToolFormat::Generic => match path {
            [Step::Key(k)] => k == "tool_call",
            [Step::Key(k), Step::Index(_)] => k == "tool_calls",
            _ => false,
        },
        // Read by `super::harmony`.
        ToolFormat::Harmony => false,
    }
}

/// serde_json's compact text of one token of a value.
fn canonical(token: &Token) -> String {
    match token {
        Token::Open(c) | Token::Close(c) => c.to_string(),
        Token::Colon => ":".to_string(),
        Token::Comma => ",".to_string(),
        Token::Str { raw, .. } => serde_json::from_str::<String>(raw)
            .ok()
            .and_then(|s| serde_json::to_string(&s).ok())
            .unwrap_or_else(|| raw.clone()),
        Token::Scalar(raw) => serde_json::from_str::<Value>(raw)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| raw.clone()),
    }
}

impl CallStream {
    /// A reader of an answer in `format`.
    pub fn new(format: ToolFormat) -> Self {
        Self {
            format,
            text: String::new(),
            pos: 0,
            scan: None,
            armed: false,
            closed: false,
            calls: Vec::new(),
            open: None,
            capture: None,
        }
    }

    /// The whole text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The arguments sent so far for call `k` (empty when none).
    pub fn sent(&self, k: usize) -> &str {
        self.calls.get(k).map_or("", |c| c.sent.as_str())
    }

    /// Whether call `k`'s head has been sent.
    pub fn head_sent(&self, k: usize) -> bool {
        self.calls.get(k).is_some_and(|c| c.head_sent)
    }

    /// Calls whose head has been sent.
    pub fn calls_sent(&self) -> usize {
        self.calls.iter().filter(|c| c.head_sent).count()
    }

    /// Reads the next piece of the answer; returns what to send.
    pub fn push(&mut self, piece: &str) -> Vec<CallDelta> {
        self.text.push_str(piece);
        let mut out = Vec::new();
        while !self.closed && self.pos < self.text.len() {
            if self.scan.is_none() && !self.find_root() {
                break;
            }
            let Some(c) = self.text[self.pos..].chars().next() else {
                break;
            };
            self.pos += c.len_utf8();
            let seen = match self.scan.as_mut() {
                Some(scan) => scan.feed(c),
                None => break,
            };
            for s in seen {
                self.on_token(s, &mut out);
            }
            let (done, failed) = self
                .scan
                .as_ref()
                .map_or((false, false), |s| (s.done, s.failed));
            if failed || (done && marker(self.format) != Some("<tool_call>")) {
                self.closed = true;
            }
            if done {
                self.scan = None;
            }
        }
        out
    }

    /// Moves `pos` to the first character of the next document if one starts there; `false`
    /// when more text is needed (or none can start: then `closed`).
    fn find_root(&mut self) -> bool {
        if !self.armed {
            match marker(self.format) {
                Some(m) => {
                    let rest = &self.text[self.pos..];
                    if let Some(i) = rest.find(m) {
                        self.pos += i + m.len();
                    } else if self.format == ToolFormat::Mistral
                        && self.pos == 0
                        && rest.trim_start().starts_with('[')
                        && !m.starts_with(rest.trim_start())
                    {
                        // Mistral models may write the list without the marker.
                    } else {
                        // Keep a possible beginning of the marker for the next piece.
                        let mut keep = self.text.len().saturating_sub(m.len() - 1).max(self.pos);
                        while !self.text.is_char_boundary(keep) {
                            keep += 1;
                        }
                        self.pos = keep;
                        return false;
                    }
                }
                None => {
                    // The document is the whole answer (Llama 3: after `<|python_tag|>`).
                    if self.pos > 0 {
                        self.closed = true;
                        return false;
                    }
                    let trimmed = self.text.trim_start();
                    let tag = "<|python_tag|>";
                    if self.format == ToolFormat::Llama3 && tag.starts_with(trimmed) {
                        return false;
                    }
                    let body = match self.format {
                        ToolFormat::Llama3 => trimmed.strip_prefix(tag).unwrap_or(trimmed),
                        _ => trimmed,
                    };
                    self.pos = self.text.len() - body.len();
                }
            }
            self.armed = true;
        }
        let body = self.text[self.pos..].trim_start();
        self.pos = self.text.len() - body.len();
        let Some(first) = body.chars().next() else {
            return false;
        };
        self.armed = false;
        let wanted = if self.format == ToolFormat::Mistral {
            '['
        } else {
            '{'
        };
        if first != wanted {
            // Not a call here (Hermes: text between calls); the parser decides at the end.
            self.closed = self.format != ToolFormat::Hermes;
            return false;
        }
        self.scan = Some(JsonScan::new());
        true
    }

    fn on_token(&mut self, seen: Seen, out: &mut Vec<CallDelta>) {
        // The arguments being read.
        if let (Some(cap), Some((k, _))) = (&self.capture, self.open) {
            let piece = canonical(&seen.token);
            let ends = seen.depth <= cap.depth && !matches!(seen.token, Token::Open(_));
            self.add_args(k, piece, out);
            if ends {
                self.capture = None;
            }
            return;
        }
        let format = self.format;
        match &seen.token {
            Token::Open('{') if self.open.is_none() && is_call(format, &seen.path) => {
                self.calls.push(Call::default());
                self.open = Some((self.calls.len() - 1, seen.depth));
            }
            Token::Close(_) => {
                if let Some((k, depth)) = self.open {
                    if seen.depth < depth {
                        self.open = None;
                        self.send_head(k, out);
                    }
                }
            }
            token => {
                let Some((k, depth)) = self.open else { return };
                let direct =
                    seen.path.len() == depth && !matches!(token, Token::Colon | Token::Comma);
                let Some(Step::Key(key)) = seen.path.last().filter(|_| direct) else {
                    return;
                };
                if matches!(token, Token::Str { key: true, .. }) {
                    return;
                }
                match (key.as_str(), token) {
                    ("name", Token::Str { raw, .. }) => {
                        self.calls[k].name = serde_json::from_str(raw).ok();
                        if format == ToolFormat::Mistral && self.calls[k].id.is_some() {
                            self.send_head(k, out);
                        }
                    }
                    ("id", Token::Str { raw, .. }) => {
                        self.calls[k].id = serde_json::from_str(raw).ok();
                        if format == ToolFormat::Mistral {
                            self.send_head(k, out);
                        }
                    }
                    ("arguments" | "parameters", token) => {
                        // Mistral writes its own id, often after the arguments: the head (and
                        // the arguments) wait for it or for the end of the call, so that the
                        // streamed id is the model's, as in the non-streamed answer.
                        if format != ToolFormat::Mistral {
                            self.send_head(k, out);
                        }
                        match token {
                            Token::Open(_) => {
                                self.capture = Some(Capture { depth });
                                self.add_args(k, canonical(token), out);
                            }
                            // A string holds the arguments' JSON text (the parser's reading).
                            Token::Str { raw, .. } => {
                                let s = serde_json::from_str::<String>(raw).unwrap_or_default();
                                self.add_args(k, s, out);
                            }
                            other => self.add_args(k, canonical(other), out),
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends call `k`'s head if its name is known and it has not been sent, with what was
    /// buffered of its arguments.
    fn send_head(&mut self, k: usize, out: &mut Vec<CallDelta>) {
        let call = &mut self.calls[k];
        let Some(name) = call.name.clone().filter(|_| !call.head_sent) else {
            return;
        };
        call.head_sent = true;
        out.push(CallDelta::Head {
            k,
            name,
            id: call.id.clone(),
        });
        if !call.buffered.is_empty() {
            let piece = std::mem::take(&mut call.buffered);
            call.sent.push_str(&piece);
            out.push(CallDelta::Args { k, piece });
        }
    }

    fn add_args(&mut self, k: usize, piece: String, out: &mut Vec<CallDelta>) {
        if piece.is_empty() {
            return;
        }
        let call = &mut self.calls[k];
        if !call.head_sent {
            call.buffered.push_str(&piece);
            return;
        }
        call.sent.push_str(&piece);
        // Consecutive pieces of one call travel in one delta.
        if let Some(CallDelta::Args { k: last, piece: p }) = out.last_mut() {
            if *last == k {
                p.push_str(&piece);
                return;
            }
        }
        out.push(CallDelta::Args { k, piece });
    }
}

#[cfg(test)]
#[path = "call_stream_tests.rs"]
mod tests;
