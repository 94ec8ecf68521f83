//! Byte-level BPE merges inside one pre-tokenized word (llama.cpp's `llm_tokenizer_bpe` behaviour).
//!
//! The word (already mapped to the byte-level alphabet) starts as one symbol per character. The
//! adjacent pair with the lowest merge rank is merged first (ties: the leftmost pair), until no pair
//! has a rank. Each final symbol is emitted as its token; a symbol that is not a token is emitted byte
//! by byte where one-character tokens exist.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::vocab::Vocab;

/// Merge ranks: `"left\0right"` → rank (the line number in `tokenizer.ggml.merges`).
#[derive(Debug, Clone, Default)]
pub struct MergeRanks {
    ranks: HashMap<String, u32>,
}

impl MergeRanks {
    /// Parses merge lines `"left right"` (split at the first space after the first character).
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut ranks = HashMap::new();
        for (rank, line) in (0u32..).zip(lines) {
            let split = line
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(i, _)| i);
            let (left, right) = match split {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => ("", ""),
            };
            ranks.entry(key(left, right)).or_insert(rank);
        }
        Self { ranks }
    }

    /// The rank of merging `left` with `right`.
    pub fn rank(&self, left: &str, right: &str) -> Option<u32> {
        self.ranks.get(&key(left, right)).copied()
    }

    /// Whether there are no merges.
    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }
}

fn key(left: &str, right: &str) -> String {
    let mut k = String::with_capacity(left.len() + right.len() + 1);
    k.push_str(left);
    k.push('\0');
    k.push_str(right);
    k
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug, PartialEq, Eq)]
struct Bigram {
    left: usize,
    right: usize,
    rank: u32,
    end: usize,
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Greater = popped first: lower rank, then smaller left index.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// What a final symbol that is not a token becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Each of its ASCII characters that is a token (byte-level BPE: other bytes are dropped, as in
    /// llama.cpp).
    AsciiChars,
    /// Each of its bytes as the `<0xXX>` token (BPE over raw UTF-8).
    ByteTokens,
}

/// Runs the merges over `word`, appending ids to `out`. With `ignore_merges`, a word that is itself
/// a token is emitted as that token directly.
pub fn tokenize_word(
    vocab: &Vocab,
    ranks: &MergeRanks,
    word: &str,
    ignore_merges: bool,
    fallback: Fallback,
    out: &mut Vec<u32>,
) {
    if let Some(id) = vocab.id_of(word).filter(|_| ignore_merges) {
        out.push(id);
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
    let mut chars = word.char_indices().peekable();
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
    let mut queue = BinaryHeap::new();
    let add = |queue: &mut BinaryHeap<Bigram>,
               symbols: &[Symbol],
               left: Option<usize>,
               right: Option<usize>| {
        let (Some(left), Some(right)) = (left, right) else {
            return;
        };
        let l = symbols[left];
        let r = symbols[right];
        let lt = &word[l.start..l.start + l.len];
        let rt = &word[r.start..r.start + r.len];
        if let Some(rank) = ranks.rank(lt, rt) {
            queue.push(Bigram {
                left,
                right,
                rank,
                end: r.start + r.len,
            });
        }
    };
    for i in 1..symbols.len() {
        add(&mut queue, &symbols, Some(i - 1), Some(i));
    }
    while let Some(b) = queue.pop() {
        let l = symbols[b.left];
        let r = symbols[b.right];
        // Stale entry: one side changed since the pair was queued.
        if l.len == 0 || r.len == 0 || l.next != Some(b.right) || r.start + r.len != b.end {
            continue;
        }
        symbols[b.left].len += r.len;
        symbols[b.right].len = 0;
        symbols[b.left].next = r.next;
        if let Some(n) = r.next {
            symbols[n].prev = Some(b.left);
        }
        add(&mut queue, &symbols, l.prev, Some(b.left));
        add(&mut queue, &symbols, Some(b.left), r.next);
    }
    let mut cur = if symbols.is_empty() { None } else { Some(0) };
    while let Some(i) = cur {
        let s = symbols[i];
        let text = &word[s.start..s.start + s.len];
        match vocab.id_of(text) {
            Some(id) => out.push(id),
            None if fallback == Fallback::ByteTokens => {
                out.extend(
                    text.bytes()
                        .filter_map(|b| vocab.id_of(&format!("<0x{b:02X}>"))),
                );
            }
            None => {
                for c in text.chars() {
                    if let Some(id) = vocab
                        .id_of(c.encode_utf8(&mut [0u8; 4]))
                        .filter(|_| c.is_ascii())
                    {
                        out.push(id);
                    }
                }
            }
        }
        cur = s.next;
    }
}

#[cfg(test)]
mod tests {
    use super::{Fallback, MergeRanks, tokenize_word};
    use crate::tokenizer::vocab::{TokenEntry, TokenType, Vocab};

    fn vocab(texts: &[&str]) -> Vocab {
        Vocab::new(
            texts
                .iter()
                .map(|t| TokenEntry {
                    text: (*t).to_string(),
                    score: 0.0,
                    ty: TokenType::Normal,
                    lstrip: false,
                    rstrip: false,
                })
                .collect(),
        )
    }

    #[test]
    fn lowest_rank_merges_first() {
        let v = vocab(&["a", "b", "c", "ab", "bc", "abc"]);
        // "b c" ranks before "a b": a + bc, and "a bc" is not a merge.
        let ranks = MergeRanks::from_lines(["b c", "a b", "ab c"]);
        let mut out = Vec::new();
        tokenize_word(&v, &ranks, "abc", false, Fallback::AsciiChars, &mut out);
        assert_eq!(out, [0, 4]);
        // With "a b" first, "ab c" then completes the word.
        let ranks = MergeRanks::from_lines(["a b", "b c", "ab c"]);
        out.clear();
        tokenize_word(&v, &ranks, "abc", false, Fallback::AsciiChars, &mut out);
        assert_eq!(out, [5]);
    }

    #[test]
    fn ignore_merges_takes_a_whole_word_token() {
        let v = vocab(&["a", "b", "c", "abc"]);
        let ranks = MergeRanks::from_lines(["a b"]);
        let mut out = Vec::new();
        tokenize_word(&v, &ranks, "abc", true, Fallback::AsciiChars, &mut out);
        assert_eq!(out, [3]);
        out.clear();
        tokenize_word(&v, &ranks, "abc", false, Fallback::AsciiChars, &mut out);
        assert_eq!(
            out,
            [0, 1, 2],
            "'ab' is not a token: emitted as single characters"
        );
    }
}
