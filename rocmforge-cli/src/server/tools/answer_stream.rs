//! A chat answer read as it is generated, in its format: the content, the reasoning (harmony)
//! and the tool calls, each sent as soon as it is known.
//!
//! - Harmony: [`HarmonyStream`] reads all three as they come.
//! - Hermes and Mistral: the text before the first call marker is content, sent as it comes
//!   (what may be the start of the marker, and blanks, are held until the next piece); the calls
//!   stream through [`CallStream`].
//! - Llama 3: an answer that does not open with a call is plain text, sent as it comes.
//! - Generic (JSON answers): the calls stream; the `response` text comes at the end.
//!
//! At the end the parser's reading of the whole text ([`super::parse_answer`]) is the final
//! word: whatever the stream has not sent of it (content after the calls, calls it missed) is
//! sent then, so the pieces add up to the non-streamed answer.

use super::call_stream::{CallDelta, CallStream};
use super::harmony::{HarmonyDelta, HarmonyStream, partial_suffix};
use super::parse::{ParsedAnswer, ToolCall};
use super::{ToolFormat, parse_answer};

/// Bytes of arguments per delta sent from the parsed answer at the end.
const ARGUMENT_PIECE: usize = 24;

/// What a stream sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerDelta {
    /// Text for the user.
    Content(String),
    /// Reasoning (`reasoning_content`).
    Reasoning(String),
    /// A call's head or a piece of its arguments.
    Call(CallDelta),
}

impl From<HarmonyDelta> for AnswerDelta {
    fn from(d: HarmonyDelta) -> Self {
        match d {
            HarmonyDelta::Content(t) => AnswerDelta::Content(t),
            HarmonyDelta::Reasoning(t) => AnswerDelta::Reasoning(t),
            HarmonyDelta::Call(c) => AnswerDelta::Call(c),
        }
    }
}

/// The content before the first call of a Hermes, Mistral or Llama 3 answer.
#[derive(Debug, Default)]
struct Lead {
    /// Bytes of the text sent as content.
    pos: usize,
    /// No more content is sent before the end.
    done: bool,
    /// Llama 3: the answer is plain text.
    plain: bool,
    sent: String,
}

/// `text` cut into pieces of about `n` bytes on character boundaries.
fn pieces(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + n).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

impl Lead {
    /// The content that can be sent now of `text` (the whole answer so far).
    fn advance(&mut self, format: ToolFormat, text: &str) -> Option<String> {
        if self.done {
            return None;
        }
        let end = match format {
            ToolFormat::Hermes | ToolFormat::Mistral => {
                let marker = if format == ToolFormat::Hermes {
                    "<tool_call>"
                } else {
                    "[TOOL_CALLS]"
                };
                let start = text.trim_start();
                if format == ToolFormat::Mistral && self.pos == 0 && start.starts_with('[') {
                    // A list without its marker: a call, no content.
                    self.done = true;
                    return None;
                }
                let rest = &text[self.pos..];
                let end = match rest.find(marker) {
                    Some(i) => {
                        self.done = true;
                        self.pos + i
                    }
                    None => text.len() - partial_suffix(rest, marker),
                };
                // Blanks wait for what follows them (the parser drops them before a call).
                self.pos + text[self.pos..end].trim_end().len()
            }
            ToolFormat::Llama3 => {
                if !self.plain {
                    let start = text.trim_start();
                    let tag = "<|python_tag|>";
                    if start.is_empty() || tag.starts_with(start) {
                        return None;
                    }
                    if start.starts_with('{') || start.starts_with(tag) {
                        self.done = true;
                        return None;
                    }
                    self.plain = true;
                }
                text.len()
            }
            ToolFormat::Generic | ToolFormat::Harmony => {
                self.done = true;
                return None;
            }
        };
        let piece = &text[self.pos..end.max(self.pos)];
        if piece.trim().is_empty() && !self.plain {
            return None;
        }
        self.pos = end;
        self.sent.push_str(piece);
        Some(piece.to_string())
    }
}

#[derive(Debug)]
enum Inner {
    /// gpt-oss's channels.
    Harmony(HarmonyStream),
    /// The other formats.
    Calls {
        format: ToolFormat,
        calls: CallStream,
        lead: Lead,
    },
}

/// One answer read as its text arrives.
#[derive(Debug)]
pub struct AnswerStream(Inner);

impl AnswerStream {
    /// A reader of an answer in `format`; `calls_allowed` when the request offered tools.
    pub fn new(format: ToolFormat, calls_allowed: bool) -> Self {
        AnswerStream(match format {
            ToolFormat::Harmony => Inner::Harmony(HarmonyStream::new(calls_allowed)),
            _ => Inner::Calls {
                format,
                calls: CallStream::new(format),
                lead: Lead::default(),
            },
        })
    }

    /// Reads the next piece; returns what to send.
    pub fn push(&mut self, piece: &str) -> Vec<AnswerDelta> {
        match &mut self.0 {
            Inner::Harmony(h) => h.push(piece).into_iter().map(Into::into).collect(),
            Inner::Calls {
                format,
                calls,
                lead,
            } => {
                let deltas = calls.push(piece);
                let mut out: Vec<AnswerDelta> = lead
                    .advance(*format, calls.text())
                    .map(AnswerDelta::Content)
                    .into_iter()
                    .collect();
                out.extend(deltas.into_iter().map(AnswerDelta::Call));
                out
            }
        }
    }

    /// The answer ended: what is left to send, and whether it called.
    pub fn finish(&mut self) -> (Vec<AnswerDelta>, bool) {
        let (format, calls, lead) = match &mut self.0 {
            Inner::Harmony(h) => {
                let out = h.finish().into_iter().map(Into::into).collect();
                return (out, h.calls_sent() > 0);
            }
            Inner::Calls {
                format,
                calls,
                lead,
            } => (*format, calls, lead),
        };
        let text = calls.text().to_string();
        let parsed = parse_answer(format, &text);
        let mut out = Vec::new();
        let send_content = |content: &str, out: &mut Vec<AnswerDelta>| match content
            .strip_prefix(lead.sent.as_str())
        {
            Some("") => {}
            Some(rest) => out.push(AnswerDelta::Content(rest.to_string())),
            None => tracing::warn!("streamed content differs from the parsed answer's"),
        };
        if parsed.calls.is_empty() {
            if calls.calls_sent() > 0 {
                // A call cut short (the token limit): its deltas are out, as far as it went.
                return (out, true);
            }
            send_content(parsed.content.as_deref().unwrap_or(&text), &mut out);
            return (out, false);
        }
        if let Some(content) = &parsed.content {
            send_content(content, &mut out);
        }
        for (k, call) in parsed.calls.iter().enumerate() {
            let rest = if calls.head_sent(k) {
                match call.arguments.strip_prefix(calls.sent(k)) {
                    Some(rest) => rest,
                    None => {
                        tracing::warn!(
                            call = k,
                            "streamed tool-call arguments differ from the parsed ones"
                        );
                        ""
                    }
                }
            } else {
                out.push(AnswerDelta::Call(CallDelta::Head {
                    k,
                    name: call.name.clone(),
                    id: call.id.clone(),
                }));
                &call.arguments
            };
            for piece in pieces(rest, ARGUMENT_PIECE) {
                out.push(AnswerDelta::Call(CallDelta::Args {
                    k,
                    piece: piece.to_string(),
                }));
            }
        }
        (out, true)
    }
}

/// The answer a client rebuilds from `deltas`: content and reasoning concatenated (content
/// `None` beside calls when empty), each call's arguments concatenated.
pub fn rebuild(deltas: impl IntoIterator<Item = AnswerDelta>) -> ParsedAnswer {
    let (mut content, mut reasoning) = (String::new(), String::new());
    let mut calls: Vec<ToolCall> = Vec::new();
    for d in deltas {
        match d {
            AnswerDelta::Content(t) => content.push_str(&t),
            AnswerDelta::Reasoning(t) => reasoning.push_str(&t),
            AnswerDelta::Call(CallDelta::Head { name, id, .. }) => calls.push(ToolCall {
                name,
                arguments: String::new(),
                id,
            }),
            AnswerDelta::Call(CallDelta::Args { k, piece }) => {
                if let Some(c) = calls.get_mut(k) {
                    c.arguments.push_str(&piece);
                }
            }
        }
    }
    ParsedAnswer {
        content: (calls.is_empty() || !content.is_empty()).then_some(content),
        reasoning: (!reasoning.is_empty()).then_some(reasoning),
        calls,
    }
}

/// The non-streamed reading of a whole answer: the stream's, so that the two agree.
pub fn read_answer(format: ToolFormat, calls_allowed: bool, text: &str) -> ParsedAnswer {
    let mut stream = AnswerStream::new(format, calls_allowed);
    let mut deltas = stream.push(text);
    deltas.extend(stream.finish().0);
    rebuild(deltas)
}

#[cfg(test)]
#[path = "answer_stream_tests.rs"]
mod tests;
