//! An incremental JSON scanner: fed a document character by character as a model writes it,
//! it reports each complete token with the path of the value it belongs to, so the tool-call
//! stream can send a call's arguments while they are being generated. It tracks structure
//! only; whether the whole document is valid is decided by the parser at the end.

/// One step of a path: the key of an object member or the index of an array element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A complete token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// `{` or `[`.
    Open(char),
    /// `}` or `]`.
    Close(char),
    /// `:`.
    Colon,
    /// `,`.
    Comma,
    /// A string as written (quotes and escapes included); `key`: an object member's name.
    Str { raw: String, key: bool },
    /// A number, `true`, `false` or `null` as written.
    Scalar(String),
}

/// A token and where it is: `path` is the path of the value it starts or belongs to (for
/// `Open`, the container's own path; for a key, punctuation or `Close`, the enclosing
/// container's path), `depth` the number of containers open after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub token: Token,
    pub path: Vec<Step>,
    pub depth: usize,
}

#[derive(Debug)]
struct Frame {
    object: bool,
    key: Option<String>,
    expect_key: bool,
    index: usize,
}

#[derive(Debug)]
enum Lex {
    Between,
    Str { raw: String, escaped: bool },
    Scalar(String),
}

/// The scanner of one document.
#[derive(Debug)]
pub struct JsonScan {
    lex: Lex,
    frames: Vec<Frame>,
    /// The document's root value is complete.
    pub done: bool,
    /// A character that cannot continue the document was met; nothing more is reported.
    pub failed: bool,
}

impl Default for JsonScan {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonScan {
    /// A scanner before the document's first character.
    pub fn new() -> Self {
        Self {
            lex: Lex::Between,
            frames: Vec::new(),
            done: false,
            failed: false,
        }
    }

    fn path(&self) -> Vec<Step> {
        self.frames
            .iter()
            .map(|f| {
                if f.object {
                    Step::Key(f.key.clone().unwrap_or_default())
                } else {
                    Step::Index(f.index)
                }
            })
            .collect()
    }

    /// Records a complete token and returns where it is.
    fn token(&mut self, token: Token) -> Option<Seen> {
        if self.done || self.failed {
            return None;
        }
        let token = match token {
            Token::Str { raw, .. }
                if self.frames.last().is_some_and(|f| f.object && f.expect_key) =>
            {
                let path = self.path();
                if let Some(f) = self.frames.last_mut() {
                    f.key = Some(serde_json::from_str::<String>(&raw).unwrap_or_default());
                    f.expect_key = false;
                }
                return Some(Seen {
                    token: Token::Str { raw, key: true },
                    path,
                    depth: self.frames.len(),
                });
            }
            t => t,
        };
        let path = self.path();
        match &token {
            Token::Open(c) => self.frames.push(Frame {
                object: *c == '{',
                key: None,
                expect_key: *c == '{',
                index: 0,
            }),
            Token::Close(c) => match self.frames.pop() {
                Some(f) if f.object == (*c == '}') => {
                    self.done = self.frames.is_empty();
                    let path = self.path();
                    return Some(Seen {
                        token,
                        path,
                        depth: self.frames.len(),
                    });
                }
                _ => {
                    self.failed = true;
                    return None;
                }
            },
            Token::Comma => match self.frames.last_mut() {
                Some(f) if f.object => {
                    f.key = None;
                    f.expect_key = true;
                }
                Some(f) => f.index += 1,
                None => {
                    self.failed = true;
                    return None;
                }
            },
            Token::Colon => {}
            Token::Str { .. } | Token::Scalar(_) => self.done = self.frames.is_empty(),
        }
        Some(Seen {
            token,
            path,
            depth: self.frames.len(),
        })
    }

    /// Feeds one character; returns the tokens it completed (a character can end a number
    /// and be a token itself).
    pub fn feed(&mut self, c: char) -> Vec<Seen> {
        let mut out = Vec::new();
        if self.done || self.failed {
            return out;
        }
        match &mut self.lex {
            Lex::Str { raw, escaped } => {
                raw.push(c);
                if *escaped {
                    *escaped = false;
                } else if c == '\\' {
                    *escaped = true;
                } else if c == '"' {
                    let raw = std::mem::take(raw);
                    self.lex = Lex::Between;
                    out.extend(self.token(Token::Str { raw, key: false }));
                }
                return out;
            }
            Lex::Scalar(s) => {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') {
                    s.push(c);
                    return out;
                }
                let s = std::mem::take(s);
                self.lex = Lex::Between;
                out.extend(self.token(Token::Scalar(s)));
            }
            Lex::Between => {}
        }
        let token = match c {
            '{' | '[' => Token::Open(c),
            '}' | ']' => Token::Close(c),
            ':' => Token::Colon,
            ',' => Token::Comma,
            '"' => {
                self.lex = Lex::Str {
                    raw: c.to_string(),
                    escaped: false,
                };
                return out;
            }
            c if c.is_ascii_digit() || matches!(c, '-' | 't' | 'f' | 'n') => {
                self.lex = Lex::Scalar(c.to_string());
                return out;
            }
            c if c.is_whitespace() => return out,
            _ => {
                self.failed = true;
                return out;
            }
        };
        out.extend(self.token(token));
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scan(text: &str) -> (Vec<Seen>, JsonScan) {
        let mut s = JsonScan::new();
        let seen = text.chars().flat_map(|c| s.feed(c)).collect();
        (seen, s)
    }

    #[test]
    fn tokens_come_with_the_path_of_their_value() {
        let (seen, s) = scan(r#"{"a": [1, {"b\"": true}], "c": -2.5e3}"#);
        assert!(s.done && !s.failed);
        let key = |k: &str| Step::Key(k.to_string());
        let find = |t: Token| seen.iter().find(|x| x.token == t).unwrap().clone();
        assert_eq!(
            find(Token::Scalar("1".into())).path,
            vec![key("a"), Step::Index(0)]
        );
        assert_eq!(
            find(Token::Scalar("true".into())).path,
            vec![key("a"), Step::Index(1), key("b\"")]
        );
        assert_eq!(find(Token::Scalar("-2.5e3".into())).path, vec![key("c")]);
        let inner = seen
            .iter()
            .find(|x| x.token == Token::Open('{') && x.depth == 3)
            .unwrap();
        assert_eq!(inner.path, vec![key("a"), Step::Index(1)]);
        assert_eq!(seen.last().unwrap().token, Token::Close('}'));
        assert_eq!(seen.last().unwrap().depth, 0);
    }

    #[test]
    fn a_mismatched_close_or_stray_character_fails_the_scan() {
        assert!(scan(r#"{"a": 1]"#).1.failed);
        assert!(scan(r#"{"a": @}"#).1.failed);
        let (_, s) = scan(r#"{"a": "unfinished"#);
        assert!(!s.done && !s.failed);
    }
}
