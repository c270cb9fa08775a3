//! One error type for the whole core. Every failure is a value; nothing here panics on bad input,
//! so the Python layer maps each variant to an exception in one place (`rust/python/src/errors.rs`).

/// What went wrong, with a message that names the argument and what was expected.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// Caller-supplied data is malformed: shapes, ranges, NaN, CSR structure, parameters.
    #[error("{0}")]
    InvalidInput(String),
    /// An item or row index outside its range (a kind of invalid input that callers written
    /// for `implicit` catch as `IndexError`).
    #[error("{0}")]
    OutOfRange(String),
    /// A model file is inconsistent or corrupt.
    #[error("{0}")]
    ModelFormat(String),
    /// The operating system refused a read or write; `kind` says why (not found, permission...).
    #[error("{message}")]
    Io {
        kind: std::io::ErrorKind,
        message: String,
    },
    /// A result or buffer larger than this machine can hold was asked for.
    #[error("{0}")]
    OutOfMemory(String),
    /// Worker threads could not be started.
    #[error("{0}")]
    Threads(String),
    /// The caller asked the computation to stop (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error about `path`, keeping the OS error's kind.
    pub fn io(e: &std::io::Error, what: impl std::fmt::Display) -> Self {
        Error::Io {
            kind: e.kind(),
            message: format!("{what}: {e}"),
        }
    }
}

/// Shorthand for an [`Error::InvalidInput`] built from a format string.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::InvalidInput(format!($($arg)*)) };
}

/// Shorthand for an [`Error::OutOfRange`] built from a format string.
#[macro_export]
macro_rules! out_of_range {
    ($($arg:tt)*) => { $crate::error::Error::OutOfRange(format!($($arg)*)) };
}

/// Shorthand for an [`Error::ModelFormat`] built from a format string.
#[macro_export]
macro_rules! bad_model {
    ($($arg:tt)*) => { $crate::error::Error::ModelFormat(format!($($arg)*)) };
}

/// `len` elements of `bytes_per` bytes each, or [`Error::OutOfMemory`] when that overflows or
/// exceeds this machine's memory: a huge `n` must raise, never abort the interpreter on a failed
/// allocation.
pub fn check_fits(what: &str, len: Option<usize>, bytes_per: usize) -> Result<usize> {
    let too_big = |detail: String| {
        Error::OutOfMemory(format!(
            "{what} would need {detail}; ask for fewer rows or a smaller n"
        ))
    };
    let bytes = len.and_then(|l| l.checked_mul(bytes_per.max(1)));
    let (len, bytes) = match (len, bytes) {
        (Some(l), Some(b)) if b <= isize::MAX as usize => (l, b),
        _ => return Err(too_big("more memory than any machine has".into())),
    };
    if let Some(total) = physical_memory() {
        if bytes > total {
            return Err(too_big(format!(
                "{} GiB, more than this machine's {} GiB",
                bytes >> 30,
                total >> 30
            )));
        }
    }
    Ok(len)
}

/// A buffer of `len` copies of `fill`, allocated only after [`check_fits`] and with a fallible
/// reservation.
pub fn buffer<T: Clone>(what: &str, len: Option<usize>, fill: T) -> Result<Vec<T>> {
    let len = check_fits(what, len, std::mem::size_of::<T>())?;
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory(format!("{what}: {len} values could not be allocated")))?;
    v.resize(len, fill);
    Ok(v)
}

/// Physical memory in bytes (Linux: `MemTotal` of /proc/meminfo), None where unknown.
fn physical_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_buffers_are_errors_not_aborts() {
        assert!(matches!(
            buffer::<i64>("x", None, 0),
            Err(Error::OutOfMemory(_))
        ));
        assert!(matches!(
            buffer::<i64>("x", Some(usize::MAX / 4), 0),
            Err(Error::OutOfMemory(_))
        ));
        assert!(matches!(
            buffer::<f32>("x", Some(1 << 50), 0.0),
            Err(Error::OutOfMemory(_))
        ));
        assert_eq!(buffer::<i64>("x", Some(3), -1).unwrap(), vec![-1; 3]);
    }
}
