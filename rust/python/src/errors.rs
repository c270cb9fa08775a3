//! The one place where core errors become Python exceptions, and the one way a binding runs
//! real work: without the GIL, interruptible with Ctrl-C.
//!
//! Hierarchy (all importable from `personae`):
//! - `PersonaeError(Exception)`: the base of personae's own errors.
//! - `InvalidInputError(PersonaeError, ValueError)`: bad arguments or data ([`Error::InvalidInput`]).
//! - `IndexOutOfRangeError(InvalidInputError, IndexError)`: an item or row index outside its
//!   range ([`Error::OutOfRange`]); code written for `implicit` catches it as `IndexError`.
//! - `ModelFormatError(PersonaeError, ValueError)`: an inconsistent or corrupt model file.
//! - I/O errors keep their kind: `FileNotFoundError`, `PermissionError`, `IsADirectoryError`,
//!   else `OSError`; a result too large for memory is a `MemoryError`; worker threads that
//!   cannot start, a `RuntimeError`; an interrupted call re-raises what Ctrl-C raised
//!   (`KeyboardInterrupt`).

use std::sync::mpsc;
use std::time::Duration;

use personae_core::threads::{self, Stop};
use personae_core::Error;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyIndexError, PyIsADirectoryError, PyKeyboardInterrupt,
    PyMemoryError, PyOSError, PyPermissionError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The exception types personae defines, created once per interpreter.
pub struct Exceptions {
    pub base: Py<PyType>,
    pub invalid_input: Py<PyType>,
    pub out_of_range: Py<PyType>,
    pub model_format: Py<PyType>,
}

static EXCEPTIONS: PyOnceLock<Exceptions> = PyOnceLock::new();

fn new_type<'py>(
    py: Python<'py>,
    name: &str,
    doc: &str,
    bases: Bound<'py, PyTuple>,
) -> PyResult<Py<PyType>> {
    let ns = PyDict::new(py);
    ns.set_item("__doc__", doc)?;
    ns.set_item("__module__", "personae")?;
    // `type(name, bases, namespace)`: PyO3's helper takes a single base, these need two.
    let t = py.get_type::<PyType>().call1((name, bases, ns))?;
    Ok(t.cast_into::<PyType>()?.unbind())
}

/// The exception types (created on first use).
pub fn exceptions(py: Python<'_>) -> PyResult<&Exceptions> {
    EXCEPTIONS.get_or_try_init(py, || {
        let base = new_type(
            py,
            "PersonaeError",
            "Base class of the errors personae raises for its own reasons.",
            PyTuple::new(py, [py.get_type::<PyException>()])?,
        )?;
        let value_error = py.get_type::<PyValueError>();
        let two = |name: &str, doc: &str| {
            let bases = PyTuple::new(py, [base.bind(py).clone(), value_error.clone()])?;
            new_type(py, name, doc, bases)
        };
        let invalid_input = two(
            "InvalidInputError",
            "An argument or input array is malformed; the message names it and what was \
             expected.",
        )?;
        let out_of_range = new_type(
            py,
            "IndexOutOfRangeError",
            "An item or row index is outside its range (also an IndexError, as in implicit).",
            PyTuple::new(
                py,
                [
                    invalid_input.bind(py).clone(),
                    py.get_type::<PyIndexError>(),
                ],
            )?,
        )?;
        Ok(Exceptions {
            invalid_input,
            out_of_range,
            model_format: two(
                "ModelFormatError",
                "A model file is inconsistent or corrupt.",
            )?,
            base,
        })
    })
}

/// Maps a core error to its Python exception.
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let typed = |pick: fn(&Exceptions) -> &Py<PyType>, msg: String| match exceptions(py) {
        Ok(ex) => PyErr::from_type(pick(ex).bind(py).clone(), msg),
        Err(e) => e,
    };
    match e {
        Error::InvalidInput(m) => typed(|x| &x.invalid_input, m),
        Error::OutOfRange(m) => typed(|x| &x.out_of_range, m),
        Error::ModelFormat(m) => typed(|x| &x.model_format, m),
        Error::Io { kind, message } => match kind {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
            std::io::ErrorKind::IsADirectory => PyIsADirectoryError::new_err(message),
            _ => PyOSError::new_err(message),
        },
        Error::OutOfMemory(m) => PyMemoryError::new_err(m),
        Error::Threads(m) => PyRuntimeError::new_err(m),
        Error::Interrupted => PyKeyboardInterrupt::new_err("interrupted"),
    }
}

/// How often the calling thread looks for Ctrl-C while the work runs.
const POLL: Duration = Duration::from_millis(50);

/// Runs `f` with `num_threads` workers and without the GIL, on a thread of its own, while the
/// calling thread waits and checks for signals. On Ctrl-C the work is asked to stop (it checks
/// between chunks) and the exception the signal raised (`KeyboardInterrupt`) is returned as
/// soon as the work has stopped. Python only delivers signals to the main thread; elsewhere
/// the check finds none and the call simply runs to its end.
pub fn run<T: Send>(
    py: Python<'_>,
    num_threads: Option<i64>,
    f: impl FnOnce(&Stop) -> personae_core::Result<T> + Send,
) -> PyResult<T> {
    let stop = Stop::new();
    let (result, interrupt) = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            let stop = &stop;
            let worker = s.spawn(move || {
                let r = threads::install(num_threads, || f(stop)).and_then(|r| r);
                // The receiver outlives the worker inside this scope.
                let _ = tx.send(r);
            });
            let mut interrupt = None;
            let result = loop {
                match rx.recv_timeout(POLL) {
                    Ok(r) => break Some(r),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                    Err(mpsc::RecvTimeoutError::Timeout) if interrupt.is_none() => {
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            stop.request();
                            interrupt = Some(e);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            };
            // A worker that sent nothing panicked: that is a bug in personae, reported as such.
            let panicked = worker.join().is_err() || result.is_none();
            (result.filter(|_| !panicked), interrupt)
        })
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    match result {
        Some(r) => r.map_err(|e| to_py(py, e)),
        None => Err(PyRuntimeError::new_err(
            "internal error in personae's Rust core (a panic); please report it",
        )),
    }
}

/// Registers the exception types on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let ex = exceptions(m.py())?;
    m.add("PersonaeError", ex.base.bind(m.py()))?;
    m.add("InvalidInputError", ex.invalid_input.bind(m.py()))?;
    m.add("IndexOutOfRangeError", ex.out_of_range.bind(m.py()))?;
    m.add("ModelFormatError", ex.model_format.bind(m.py()))?;
    Ok(())
}
