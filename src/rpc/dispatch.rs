//! The `dispatch!` macro.
