//! The byte-level alphabet of GPT-2 style BPE vocabularies.
//!
//! Every byte value is given a printable Unicode character so that token texts never hold raw control
//! bytes or spaces: the printable ranges `!`..=`~`, `¡`..=`¬` and `®`..=`ÿ` stand for their own code
//! point; the remaining 68 bytes get U+0100, U+0101, ... in increasing byte order (so the space 0x20
//! becomes `Ġ` U+0120 and the newline 0x0A becomes `Ċ` U+010A).

use std::collections::HashMap;

/// Both directions of the byte ↔ character map.
#[derive(Debug, Clone)]
pub struct ByteMap {
    to_char: [char; 256],
    to_byte: HashMap<char, u8>,
}

fn keeps_own_code_point(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

impl ByteMap {
    /// Builds the map.
    pub fn new() -> Self {
        let mut to_char = ['\0'; 256];
        let mut next_extra: u32 = 256;
        for b in 0..=255u8 {
            to_char[usize::from(b)] = if keeps_own_code_point(b) {
                char::from(b)
            } else {
                let c = char::from_u32(next_extra).unwrap_or(char::REPLACEMENT_CHARACTER);
                next_extra += 1;
                c
            };
        }
        let to_byte = (0..=255u8).map(|b| (to_char[usize::from(b)], b)).collect();
        Self { to_char, to_byte }
    }

    /// The character standing for byte `b`.
    pub fn char_for(&self, b: u8) -> char {
        self.to_char[usize::from(b)]
    }

    /// The byte a character stands for, if it is part of the alphabet.
    pub fn byte_for(&self, c: char) -> Option<u8> {
        self.to_byte.get(&c).copied()
    }

    /// Maps every byte of `bytes` to its character.
    pub fn encode(&self, bytes: &[u8]) -> String {
        bytes.iter().map(|&b| self.char_for(b)).collect()
    }

    /// Maps the characters of a token text back to bytes; a character outside the alphabet is kept as
    /// its own UTF-8 encoding.
    pub fn decode(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.byte_for(c) {
                Some(b) => out.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out
    }
}

impl Default for ByteMap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::ByteMap;

    #[test]
    fn space_and_newline_map_to_the_gpt2_characters() {
        let m = ByteMap::new();
        assert_eq!(m.char_for(b' '), 'Ġ');
        assert_eq!(m.char_for(b'\n'), 'Ċ');
        assert_eq!(m.char_for(b'a'), 'a');
        assert_eq!(m.char_for(0xAD), 'Ń');
    }

    #[test]
    fn every_byte_round_trips() {
        let m = ByteMap::new();
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(m.decode(&m.encode(&all)), all);
    }
}
