//! SentencePiece-style tokenization of one piece of text (llama.cpp's `llm_tokenizer_spm` behaviour).
//!
//! The text (spaces already replaced by `▁`) starts as one symbol per character. Repeatedly, the
//! adjacent pair whose concatenation is the vocabulary token with the highest score is merged (ties:
//! the leftmost pair). Each final symbol is emitted as its token; a symbol with no token is split back
//! along the merges that built it, and characters with no token at all fall back to `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::error::{TokenizerError, TokenizerResult};
use super::vocab::Vocab;

#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug)]
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Greater = popped first: higher score, then smaller left index.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

struct Session<'a> {
    vocab: &'a Vocab,
    unk: Option<u32>,
    text: &'a str,
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Bigram>,
    rev_merge: HashMap<&'a str, (usize, usize)>,
}

impl<'a> Session<'a> {
    fn text_of(&self, start: usize, len: usize) -> &'a str {
        &self.text[start..start + len]
    }

    fn try_add_bigram(&mut self, left: Option<usize>, right: Option<usize>) {
        let (Some(left), Some(right)) = (left, right) else {
            return;
        };
        let l = self.symbols[left];
        let r = self.symbols[right];
        let text = self.text_of(l.start, l.len + r.len);
        let Some(entry) = self.vocab.id_of(text).and_then(|id| self.vocab.get(id)) else {
            return;
        };
        self.queue.push(Bigram {
            left,
            right,
            score: entry.score,
            size: text.len(),
        });
        self.rev_merge.insert(text, (left, right));
    }

    fn run(&mut self) {
        for i in 1..self.symbols.len() {
            self.try_add_bigram(Some(i - 1), Some(i));
        }
        while let Some(b) = self.queue.pop() {
            let l = self.symbols[b.left];
            let r = self.symbols[b.right];
            if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
                continue;
            }
            self.symbols[b.left].len += r.len;
            self.symbols[b.right].len = 0;
            self.symbols[b.left].next = r.next;
            if let Some(n) = r.next {
                self.symbols[n].prev = Some(b.left);
            }
            self.try_add_bigram(l.prev, Some(b.left));
            self.try_add_bigram(Some(b.left), r.next);
        }
    }

    fn resegment(&self, first: usize, out: &mut Vec<u32>) -> TokenizerResult<()> {
        let mut stack = vec![first];
        while let Some(i) = stack.pop() {
            let s = self.symbols[i];
            let text = self.text_of(s.start, s.len);
            if let Some(id) = self.vocab.id_of(text) {
                out.push(id);
                continue;
            }
            if let Some(&(l, r)) = self.rev_merge.get(text) {
                stack.push(r);
                stack.push(l);
                continue;
            }
            for &byte in text.as_bytes() {
                out.push(self.byte_token(byte)?);
            }
        }
        Ok(())
    }

    fn byte_token(&self, byte: u8) -> TokenizerResult<u32> {
        self.vocab
            .spm_byte_token(byte)
            .or(self.unk)
            .ok_or(TokenizerError::UnencodableByte { byte })
    }
}

/// Tokenizes `text` (spaces already escaped as `▁`), appending ids to `out`. Bytes with no token of
/// their own become `unk`.
pub fn tokenize(
    vocab: &Vocab,
    unk: Option<u32>,
    text: &str,
    out: &mut Vec<u32>,
) -> TokenizerResult<()> {
    let mut symbols = Vec::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let idx = symbols.len();
        let has_next = chars.peek().is_some();
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: idx.checked_sub(1),
            next: has_next.then_some(idx + 1),
        });
    }
    if symbols.is_empty() {
        return Ok(());
    }
    let mut session = Session {
        vocab,
        unk,
        text,
        symbols,
        queue: BinaryHeap::new(),
        rev_merge: HashMap::new(),
    };
    session.run();
    let mut cur = Some(0);
    while let Some(i) = cur {
        session.resegment(i, out)?;
        cur = session.symbols[i].next;
    }
    Ok(())
}
