//! Fuzz target: tokenizer construction from GGUF metadata, then encode / decode of a fuzzed
//! string. Input layout: `[n: u8][n bytes of text][GGUF file]` (the text is used lossily as
//! UTF-8). Building may fail with an error; encoding must then give ids inside the vocabulary,
//! and decoding (whole, with specials, streamed, of ids outside the vocabulary) must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rocmforge_gguf::GgufFile;
use rocmforge_model::Tokenizer;

/// Vocabularies larger than this are skipped (the seeds hold a few hundred tokens; a mutated
/// count only makes the run slow, not more interesting).
const MAX_TOKENS: usize = 1 << 16;

fn exercise(tok: &Tokenizer, text: &str) {
    let n = tok.vocab_size();
    for (special, parse) in [(false, false), (true, true), (true, false)] {
        let Ok(ids) = tok.encode(text, special, parse) else {
            continue;
        };
        assert!(
            ids.iter().all(|&id| (id as usize) < n),
            "id outside the vocabulary"
        );
        let plain = tok.decode(&ids);
        let _ = tok.decode_with_special(&ids);
        let mut stream = tok.stream_decoder();
        let mut streamed: String = ids.iter().map(|&id| stream.push(id)).collect();
        streamed.push_str(&stream.finish());
        assert!(!stream.has_pending());
        if !special && !parse {
            // Re-encoding a decoded text must not panic either.
            let _ = tok.encode(&plain, false, false);
        }
    }
    // Ids outside the vocabulary are skipped, not a panic.
    let wild = [0, 1, 2, n as u32, u32::MAX];
    let _ = tok.decode(&wild);
    for id in wild {
        let _ = tok.token_to_bytes_special(id);
        let _ = tok.token_text(id);
        let _ = tok.is_eog(id);
    }
    let _ = tok.chat_template();
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (text, gguf) = rest.split_at(n);
    let text = String::from_utf8_lossy(text);
    let Ok(file) = GgufFile::from_bytes("fuzz.gguf", gguf.to_vec()) else {
        return;
    };
    if file
        .metadata()
        .get_array("tokenizer.ggml.tokens")
        .is_ok_and(|t| t.len() > MAX_TOKENS)
    {
        return;
    }
    if let Ok(tok) = Tokenizer::from_gguf(&file) {
        exercise(&tok, &text);
    }
});
