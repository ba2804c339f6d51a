//! [`PickleError`], what the pickle codec reports.

use std::fmt;

/// Why the [`Pickle`](crate::codec::Pickle) codec could not encode or decode a value.
///
/// `Display` says what was refused and why (`"pickle nests deeper than the 128-level
/// limit"`, `"the pickle refers to array._array_reconstructor, a Python class or function
/// with no Rust counterpart; …"`, `"invalid type: string \"x\", expected u32"`).
/// [`python_class`](PickleError::python_class) names the Python class or function behind a refusal of
/// that kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    message: String,
    class: Option<String>,
}

impl PickleError {
    pub(super) fn new(message: impl Into<String>) -> PickleError {
        PickleError {
            message: message.into(),
            class: None,
        }
    }

    /// The refusal of a pickle that names `class` (as `module.name`).
    pub(super) fn unknown_class(class: String) -> PickleError {
        PickleError {
            message: format!(
                "the pickle refers to {class}, a Python class or function with no Rust \
                 counterpart; only None, bool, int, float, str, bytes, bytearray, list, \
                 tuple, dict, set and frozenset decode"
            ),
            class: Some(class),
        }
    }

    /// The Python class or function (`module.name`) whose object the pickle holds, when
    /// that is why it was refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::{Decode, Pickle, PyValue};
    ///
    /// // Python: pickle.dumps(array('i', [2]), protocol=2)
    /// let p = b"\x80\x02carray\narray\nq\x00X\x01\x00\x00\x00iq\x01]q\x02K\x02a\x86q\x03Rq\x04.";
    /// let err = Decode::<PyValue>::decode(&mut Pickle::new(), p).unwrap_err();
    /// assert_eq!(err.python_class(), Some("array.array"));
    /// ```
    pub fn python_class(&self) -> Option<&str> {
        self.class.as_deref()
    }
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PickleError {}

impl serde::ser::Error for PickleError {
    fn custom<T: fmt::Display>(msg: T) -> PickleError {
        PickleError::new(msg.to_string())
    }
}

impl serde::de::Error for PickleError {
    fn custom<T: fmt::Display>(msg: T) -> PickleError {
        PickleError::new(msg.to_string())
    }
}
