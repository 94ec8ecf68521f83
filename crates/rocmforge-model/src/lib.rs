//! Models over GGUF (being built: see issue 5).
