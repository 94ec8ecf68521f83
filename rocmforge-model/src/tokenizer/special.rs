//! Splitting the input on special-token texts before the vocabulary's own algorithm runs.
//!
//! Special tokens (control, unknown and user-defined ones) are tried longest text first; every
//! occurrence in a not-yet-matched stretch of text becomes that token. Control and unknown tokens are
//! only matched when special parsing is on; user-defined tokens always are.

use std::ops::Range;

use super::vocab::{TokenType, Vocab};

/// A piece of the input after special-token splitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fragment {
    /// Plain text, as a byte range of the input.
    Text(Range<usize>),
    /// A special token matched in the input.
    Token(u32),
}

/// Ids of the tokens that may be matched as a whole, longest text first (ties: lower id first).
pub fn special_match_order(vocab: &Vocab) -> Vec<u32> {
    let mut ids: Vec<u32> = (0u32..)
        .zip(vocab.entries())
        .filter(|(_, e)| {
            matches!(
                e.ty,
                TokenType::Control | TokenType::UserDefined | TokenType::Unknown
            )
        })
        .filter(|(_, e)| !e.text.is_empty())
        .map(|(id, _)| id)
        .collect();
    ids.sort_by_key(|&id| std::cmp::Reverse(vocab.get(id).map_or(0, |e| e.text.len())));
    ids
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Splits `text` on the special tokens of `order`.
pub fn partition(vocab: &Vocab, order: &[u32], text: &str, parse_special: bool) -> Vec<Fragment> {
    if text.is_empty() {
        return Vec::new();
    }
    let bytes = text.as_bytes();
    let mut fragments = vec![Fragment::Text(0..text.len())];
    for &id in order {
        let Some(entry) = vocab.get(id) else { continue };
        if !parse_special && entry.ty.is_special() {
            continue;
        }
        let needle = entry.text.as_str();
        let mut next = Vec::with_capacity(fragments.len());
        for frag in fragments {
            let Fragment::Text(range) = frag else {
                next.push(frag);
                continue;
            };
            let mut start = range.start;
            let end = range.end;
            while start < end {
                let Some(pos) = text[start..end].find(needle) else {
                    break;
                };
                let m = start + pos;
                let mut left_end = m;
                if entry.lstrip {
                    while left_end > start && is_c_space(bytes[left_end - 1]) {
                        left_end -= 1;
                    }
                }
                if left_end > start {
                    next.push(Fragment::Text(start..left_end));
                }
                next.push(Fragment::Token(id));
                start = m + needle.len();
                if entry.rstrip {
                    while start < end && is_c_space(bytes[start]) {
                        start += 1;
                    }
                }
            }
            if start < end {
                next.push(Fragment::Text(start..end));
            }
        }
        fragments = next;
    }
    fragments
}

#[cfg(test)]
mod tests {
    use super::{Fragment, partition, special_match_order};
    use crate::tokenizer::vocab::{TokenEntry, TokenType, Vocab};

    fn entry(text: &str, ty: TokenType, rstrip: bool) -> TokenEntry {
        TokenEntry {
            text: text.to_string(),
            score: 0.0,
            ty,
            lstrip: false,
            rstrip,
        }
    }

    fn vocab() -> Vocab {
        Vocab::new(vec![
            entry("a", TokenType::Normal, false),
            entry("<|im|>", TokenType::Control, false),
            entry("<|im|>x", TokenType::Control, false),
            entry("<user>", TokenType::UserDefined, true),
        ])
    }

    fn texts(text: &str, frags: &[Fragment]) -> Vec<String> {
        frags
            .iter()
            .map(|f| match f {
                Fragment::Text(r) => text[r.clone()].to_string(),
                Fragment::Token(id) => format!("#{id}"),
            })
            .collect()
    }

    #[test]
    fn longest_special_text_wins_and_control_needs_parsing() {
        let v = vocab();
        let order = special_match_order(&v);
        assert_eq!(order[0], 2, "the longest text is tried first");
        let text = "q<|im|>xy<|im|>";
        assert_eq!(
            texts(text, &partition(&v, &order, text, true)),
            ["q", "#2", "y", "#1"]
        );
        assert_eq!(texts(text, &partition(&v, &order, text, false)), [text]);
    }

    #[test]
    fn user_defined_tokens_always_match_and_rstrip_eats_spaces() {
        let v = vocab();
        let order = special_match_order(&v);
        let text = "hi <user>   there";
        assert_eq!(
            texts(text, &partition(&v, &order, text, false)),
            ["hi ", "#3", "there"]
        );
        assert!(partition(&v, &order, "", true).is_empty());
    }
}
