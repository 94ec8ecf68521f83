//! One module per subcommand of `rocmforge`.

pub mod generate;
pub mod inspect;
pub mod output;
pub mod perplexity;
pub mod predict;
pub mod tokenize;
