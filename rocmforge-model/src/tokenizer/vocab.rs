//! The vocabulary: token texts, scores, types and the text → id index.

use std::collections::HashMap;

/// Token types as stored in `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// 0, or any value this crate does not know.
    Undefined,
    /// 1: an ordinary piece of text.
    Normal,
    /// 2: the unknown token.
    Unknown,
    /// 3: a control token (BOS, EOS, `<|im_start|>`, ...), rendered as nothing by default.
    Control,
    /// 4: a user-defined token, always matched as a whole in the input.
    UserDefined,
    /// 5: an unused slot.
    Unused,
    /// 6: a byte-fallback token `<0xXX>`.
    Byte,
}

impl TokenType {
    /// Decodes the GGUF integer.
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }

    /// Control and unknown tokens: matched in the input only when special-token parsing is on.
    pub fn is_special(self) -> bool {
        matches!(self, Self::Control | Self::Unknown)
    }
}

/// One vocabulary entry.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// The token text as stored in the file (byte-level characters for BPE, `▁` for spaces in SPM).
    pub text: String,
    /// SPM merge score (0 where the file has none).
    pub score: f32,
    /// The token type.
    pub ty: TokenType,
    /// Whitespace to the left of this token is dropped when it is matched as a special token.
    pub lstrip: bool,
    /// Whitespace to the right of this token is dropped when it is matched as a special token.
    pub rstrip: bool,
}

/// Token entries plus the text → id index.
#[derive(Debug, Clone)]
pub struct Vocab {
    entries: Vec<TokenEntry>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// Builds the index; when two entries share a text the later id wins.
    pub fn new(entries: Vec<TokenEntry>) -> Self {
        let mut index = HashMap::with_capacity(entries.len());
        for (id, e) in (0u32..).zip(entries.iter()) {
            index.insert(e.text.clone(), id);
        }
        Self { entries, index }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry of `id`.
    pub fn get(&self, id: u32) -> Option<&TokenEntry> {
        self.entries.get(usize::try_from(id).ok()?)
    }

    /// Mutable access, for fixing token types after load.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut TokenEntry> {
        self.entries.get_mut(usize::try_from(id).ok()?)
    }

    /// All entries in id order.
    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// The id of the token whose text is exactly `text`.
    pub fn id_of(&self, text: &str) -> Option<u32> {
        self.index.get(text).copied()
    }

    /// The SPM byte-fallback token of `byte`: `<0xXX>`, else the byte as a one-character token.
    pub fn spm_byte_token(&self, byte: u8) -> Option<u32> {
        let hex = format!("<0x{byte:02X}>");
        self.id_of(&hex).or_else(|| {
            if byte.is_ascii() {
                self.id_of(char::from(byte).encode_utf8(&mut [0u8; 4]))
            } else {
                None
            }
        })
    }
}
