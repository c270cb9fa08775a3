//! One error type for the whole core. Every failure is a value; nothing here panics on bad input,
//! so the Python layer can map each variant to an exception in one place.

/// What went wrong, with a message that names the argument and what was expected.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// Caller-supplied data is malformed: shapes, ranges, NaN, CSR structure.
    #[error("{0}")]
    InvalidInput(String),
    /// A model file is missing pieces, inconsistent, or corrupt.
    #[error("{0}")]
    ModelFormat(String),
    /// The operating system refused a read or write.
    #[error("{0}")]
    Io(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an [`Error::InvalidInput`] built from a format string.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::InvalidInput(format!($($arg)*)) };
}

/// Shorthand for an [`Error::ModelFormat`] built from a format string.
#[macro_export]
macro_rules! bad_model {
    ($($arg:tt)*) => { $crate::error::Error::ModelFormat(format!($($arg)*)) };
}
