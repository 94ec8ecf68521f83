//! gpt-oss's harmony answers, read as they are generated.
//!
//! The generation prompt ends with `<|start|>assistant`, so an answer is a run of messages, each
//! a header up to `<|message|>` and a body up to `<|end|>` (the last one's `<|return|>` or
//! `<|call|>` ends generation and is not in the text):
//!
//! ```text
//! <|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…
//! <|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{…}
//! <|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>{…}
//! ```
//!
//! As llama.cpp's server reads them (`common/parsers/gpt-oss.cpp`, default reasoning format):
//! the `analysis` channel is the reasoning (`reasoning_content`), `final` and recipient-less
//! `commentary` (a preamble) are the content, and a message to `functions.NAME` is a call whose
//! arguments are its body. Messages to other recipients (built-in tools) are dropped. Text that
//! does not start like a harmony header is all content.
//!
//! Bodies are sent as they come, holding back only what may be the start of `<|end|>` (and, for
//! arguments, whitespace at either end): the non-streamed answer is this reader run over the
//! whole text, so the streamed pieces add up to it exactly.

use super::CallDelta;
use super::parse::ParsedAnswer;

const MESSAGE: &str = "<|message|>";
const END: &str = "<|end|>";
const CHANNEL: &str = "<|channel|>";
const START: &str = "<|start|>";

/// What a stream sends for a piece of a harmony answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarmonyDelta {
    /// Reasoning (the `analysis` channel).
    Reasoning(String),
    /// Text for the user.
    Content(String),
    /// A tool call's head or a piece of its arguments.
    Call(CallDelta),
}

/// Where the body being read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Reasoning,
    Content,
    /// The arguments of call `k`; `started` once a non-blank character was sent.
    Call {
        k: usize,
        started: bool,
    },
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a message header up to `<|message|>`.
    Header,
    /// Reading a body up to `<|end|>`.
    Body(Body),
    /// The answer is not in the harmony form: all of it is content.
    Plain,
}

/// A harmony answer read as its text arrives.
#[derive(Debug)]
pub struct HarmonyStream {
    text: String,
    pos: usize,
    state: State,
    /// Whether calls were offered (others are dropped, as llama.cpp drops unsolicited ones).
    calls_allowed: bool,
    calls: usize,
    /// Whether any message header was read.
    saw_header: bool,
}

/// Length of the longest end of `s` that begins `marker` (held back until the next piece).
pub(super) fn partial_suffix(s: &str, marker: &str) -> usize {
    (1..marker.len().min(s.len() + 1))
        .rev()
        .find(|&n| s.is_char_boundary(s.len() - n) && marker.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

/// The word after `key` in `header`: up to whitespace or the next `<|`.
fn word_after<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(key)? + key.len();
    let rest = &header[at..];
    let end = rest
        .find(|c: char| c.is_whitespace())
        .into_iter()
        .chain(rest.find("<|"))
        .min()
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Whether `text` (the answer's start) is, or may still become, a harmony header.
fn may_be_header(text: &str) -> bool {
    let t = text.trim_start();
    [CHANNEL, START, "to=", " to="]
        .iter()
        .any(|m| t.starts_with(m) || m.starts_with(t))
}

impl HarmonyStream {
    /// A reader; `calls_allowed` when the request offered tools.
    pub fn new(calls_allowed: bool) -> Self {
        Self {
            text: String::new(),
            pos: 0,
            state: State::Header,
            calls_allowed,
            calls: 0,
            saw_header: false,
        }
    }

    /// Calls whose head was sent.
    pub fn calls_sent(&self) -> usize {
        self.calls
    }

    /// Reads the next piece; returns what to send.
    pub fn push(&mut self, piece: &str) -> Vec<HarmonyDelta> {
        self.text.push_str(piece);
        let mut out = Vec::new();
        loop {
            let before = (self.pos, self.state);
            match self.state {
                State::Plain => {
                    let rest = self.text[self.pos..].to_string();
                    self.pos = self.text.len();
                    emit(&mut out, Body::Content, rest);
                }
                State::Header => self.read_header(&mut out),
                State::Body(body) => self.read_body(body, false, &mut out),
            }
            if (self.pos, self.state) == before {
                break;
            }
        }
        out
    }

    /// The answer ended: sends what was held back.
    pub fn finish(&mut self) -> Vec<HarmonyDelta> {
        let mut out = self.push("");
        match self.state {
            State::Body(body) => self.read_body(body, true, &mut out),
            State::Header if !self.saw_header => {
                // Never a harmony answer (or an empty one): all of it is content.
                let rest = self.text[self.pos..].to_string();
                self.pos = self.text.len();
                emit(&mut out, Body::Content, rest);
            }
            // A header cut short (the token limit): nothing of it is sent.
            State::Header | State::Plain => {}
        }
        out
    }

    fn read_header(&mut self, out: &mut Vec<HarmonyDelta>) {
        let rest = &self.text[self.pos..];
        if !self.saw_header && !may_be_header(rest) {
            self.state = State::Plain;
            return;
        }
        let Some(at) = rest.find(MESSAGE) else {
            return;
        };
        let header = &rest[..at];
        let recipient = word_after(header, "to=").filter(|r| *r != "assistant");
        let channel = word_after(header, CHANNEL).unwrap_or("");
        let body = match recipient {
            Some(r) => match r.strip_prefix("functions.") {
                Some(name) if self.calls_allowed && !name.is_empty() => {
                    let k = self.calls;
                    self.calls += 1;
                    out.push(HarmonyDelta::Call(CallDelta::Head {
                        k,
                        name: name.to_string(),
                        id: None,
                    }));
                    Body::Call { k, started: false }
                }
                _ => Body::Dropped,
            },
            None if channel == "analysis" => Body::Reasoning,
            None => Body::Content,
        };
        self.pos += at + MESSAGE.len();
        self.saw_header = true;
        self.state = State::Body(body);
    }

    fn read_body(&mut self, body: Body, at_end: bool, out: &mut Vec<HarmonyDelta>) {
        let rest = &self.text[self.pos..];
        let (mut take, closed) = match rest.find(END) {
            Some(i) => (i, true),
            None if at_end => (rest.len(), false),
            None => (rest.len() - partial_suffix(rest, END), false),
        };
        let mut skip = 0;
        let mut body = body;
        if let Body::Call { k, started } = body {
            // Arguments: no blank at either end (held until something follows it).
            let piece = &rest[..take];
            if !started {
                skip = piece.len() - piece.trim_start().len();
            }
            let trimmed_end = piece.trim_end().len().max(skip);
            if !closed && !at_end {
                take = trimmed_end;
            }
            let sent = &rest[skip..trimmed_end.max(skip)];
            if !sent.is_empty() {
                body = Body::Call { k, started: true };
            }
            let sent = sent.to_string();
            emit(out, body, sent);
        } else {
            emit(out, body, rest[..take].to_string());
        }
        self.pos += take;
        if closed {
            self.pos += END.len();
            self.state = State::Header;
        } else {
            self.state = State::Body(body);
        }
    }
}

fn emit(out: &mut Vec<HarmonyDelta>, body: Body, piece: String) {
    if piece.is_empty() {
        return;
    }
    out.push(match body {
        Body::Reasoning => HarmonyDelta::Reasoning(piece),
        Body::Content => HarmonyDelta::Content(piece),
        Body::Call { k, .. } => HarmonyDelta::Call(CallDelta::Args { k, piece }),
        Body::Dropped => return,
    });
}

/// A whole harmony answer: reasoning, content and calls (the streamed reader's deltas added
/// up). Content is `None` beside calls when empty; reasoning is `None` when there is none.
pub fn parse(text: &str, calls_allowed: bool) -> ParsedAnswer {
    let mut stream = HarmonyStream::new(calls_allowed);
    let mut deltas = stream.push(text);
    deltas.extend(stream.finish());
    super::answer_stream::rebuild(deltas.into_iter().map(Into::into))
}

#[cfg(test)]
#[path = "harmony_tests.rs"]
mod tests;
