//! One module per subcommand of `rocmforge`.

pub mod bench;
pub mod bench_bandwidth;
pub mod chat;
pub mod device;
pub mod devices;
pub mod generate;
pub mod imatrix;
pub mod inspect;
pub mod output;
pub mod perplexity;
pub mod predict;
pub mod quantize;
pub mod serve;
pub mod tokenize;
