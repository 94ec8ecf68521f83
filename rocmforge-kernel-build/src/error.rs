//! The crate's one error type.

/// What can go wrong while finding or running a kernel compiler.
#[derive(Debug, thiserror::Error)]
pub enum KernelBuildError {
    /// Reading a kernel source folder or file failed.
    #[error("reading {path}: {message}")]
    Io {
        /// The file or folder.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The compiler could not be started.
    #[error("could not start {command}: {message}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        message: String,
    },
    /// The compiler ran and failed.
    #[error("kernel build failed for {label}:\n{command}\n{output}")]
    Compile {
        /// Target and source, e.g. `gfx942 kernels/norm.hip`.
        label: String,
        /// The command line.
        command: String,
        /// The compiler's stdout and stderr.
        output: String,
    },
    /// A kernel file name that is not UTF-8 (kernel families are named by their file stems).
    #[error("kernel file name {0} is not UTF-8")]
    BadName(String),
    /// The folder holds no `*.hip` file.
    #[error("no kernel sources (*.hip) in {0}")]
    NoSources(String),
}

/// `Result` with [`KernelBuildError`].
pub type KernelBuildResult<T> = Result<T, KernelBuildError>;
