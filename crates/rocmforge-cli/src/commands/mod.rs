//! One module per subcommand of `rocmforge`.

pub mod inspect;
pub mod output;
