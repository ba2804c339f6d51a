//! `Debug` for [`PyValue`]: Python's `repr`.

use std::fmt::{self, Debug, Formatter, Write};

use super::value::PyValue;

impl Debug for PyValue {
    /// Python's `repr` of the value: `None`, `True`, `-0.0`, `inf`, `'text'`,
    /// `b'\x00'`, `bytearray(b'')`, `(1,)`, `{'k': [1, 2]}`, `set()`,
    /// `frozenset({1})`. Strings are escaped as Python escapes them, except that every
    /// non-ASCII character that is not a control character is written as itself (Python
    /// also escapes a few more, such as unassigned code points).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            PyValue::None => f.write_str("None"),
            PyValue::Bool(true) => f.write_str("True"),
            PyValue::Bool(false) => f.write_str("False"),
            PyValue::Int(i) => Debug::fmt(i, f),
            PyValue::Float(x) => float(*x, f),
            PyValue::Str(s) => text(s, f),
            PyValue::Bytes(b) => bytes(b, f),
            PyValue::ByteArray(b) => {
                f.write_str("bytearray(")?;
                bytes(b, f)?;
                f.write_char(')')
            }
            PyValue::List(items) => items_between(f, "[", items, "]"),
            PyValue::Tuple(items) if items.len() == 1 => items_between(f, "(", items, ",)"),
            PyValue::Tuple(items) => items_between(f, "(", items, ")"),
            PyValue::Dict(items) => {
                f.write_char('{')?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {v:?}")?;
                }
                f.write_char('}')
            }
            PyValue::Set(items) if items.is_empty() => f.write_str("set()"),
            PyValue::Set(items) => items_between(f, "{", items, "}"),
            PyValue::FrozenSet(items) if items.is_empty() => f.write_str("frozenset()"),
            PyValue::FrozenSet(items) => items_between(f, "frozenset({", items, "})"),
        }
    }
}

fn items_between(f: &mut Formatter<'_>, open: &str, items: &[PyValue], close: &str) -> fmt::Result {
    f.write_str(open)?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        Debug::fmt(item, f)?;
    }
    f.write_str(close)
}

/// `repr(float)`: the shortest text that reads back, with an exponent below 1e-4 and
/// from 1e16 on, written `e+16` / `e-05`.
fn float(x: f64, f: &mut Formatter<'_>) -> fmt::Result {
    if x.is_nan() {
        return f.write_str("nan");
    }
    if x.is_infinite() {
        return f.write_str(if x > 0.0 { "inf" } else { "-inf" });
    }
    // Rust's `Debug` is the shortest round-trip text, and switches to an exponent at the
    // same magnitudes as Python; only the exponent's spelling differs.
    let rust = format!("{x:?}");
    match rust.split_once('e') {
        None => f.write_str(&rust),
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            write!(f, "{mantissa}e{sign}{digits:0>2}")
        }
    }
}

/// `repr(str)`: single quotes unless the text holds one and no double quote.
fn text(s: &str, f: &mut Formatter<'_>) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    f.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c == quote => write!(f, "\\{c}")?,
            c if !printable(c) => match c as u32 {
                n @ 0..=0xff => write!(f, "\\x{n:02x}")?,
                n @ 0x100..=0xffff => write!(f, "\\u{n:04x}")?,
                n => write!(f, "\\U{n:08x}")?,
            },
            c => f.write_char(c)?,
        }
    }
    f.write_char(quote)
}

/// Whether Python's `str.isprintable` holds for `c`, approximately: controls, the
/// separators other than space, and the soft hyphen are not.
fn printable(c: char) -> bool {
    let n = c as u32;
    !(c.is_control()
        || matches!(n, 0xa0 | 0xad | 0x1680 | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x206f | 0x3000 | 0xfeff)
        || (0xd800..=0xdfff).contains(&n))
}

/// `repr(bytes)`.
fn bytes(b: &[u8], f: &mut Formatter<'_>) -> fmt::Result {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    f.write_char('b')?;
    f.write_char(char::from(quote))?;
    for &byte in b {
        match byte {
            b'\\' => f.write_str("\\\\")?,
            b'\n' => f.write_str("\\n")?,
            b'\r' => f.write_str("\\r")?,
            b'\t' => f.write_str("\\t")?,
            q if q == quote => write!(f, "\\{}", char::from(q))?,
            0x20..=0x7e => f.write_char(char::from(byte))?,
            _ => write!(f, "\\x{byte:02x}")?,
        }
    }
    f.write_char(char::from(quote))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(v: PyValue) -> String {
        format!("{v:?}")
    }

    #[test]
    fn scalars_read_as_python_writes_them() {
        assert_eq!(repr(PyValue::None), "None");
        assert_eq!(repr(PyValue::Bool(true)), "True");
        assert_eq!(
            repr(PyValue::from(-(1i128 << 70))),
            "-1180591620717411303424"
        );
        for (x, want) in [
            (1.5, "1.5"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1e-5, "1e-05"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (1e300, "1e+300"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(repr(PyValue::Float(x)), want, "{x}");
        }
    }

    #[test]
    fn strings_and_bytes_are_quoted_and_escaped_as_python_does() {
        assert_eq!(repr("it's".into()), "\"it's\"");
        assert_eq!(repr("a'\"\n\\é\u{1}".into()), "'a\\'\"\\n\\\\é\\x01'");
        assert_eq!(
            repr(PyValue::Bytes(b"\x00'a\xff".to_vec())),
            "b\"\\x00'a\\xff\""
        );
        assert_eq!(repr(PyValue::ByteArray(vec![])), "bytearray(b'')");
    }

    #[test]
    fn containers_read_as_python_writes_them() {
        assert_eq!(repr(PyValue::Tuple(vec![])), "()");
        assert_eq!(repr(PyValue::Tuple(vec![1.into()])), "(1,)");
        assert_eq!(repr(PyValue::Set(vec![])), "set()");
        assert_eq!(repr(PyValue::FrozenSet(vec![1.into()])), "frozenset({1})");
        let d = PyValue::Dict(vec![((1, "a").into(), PyValue::List(vec![PyValue::None]))]);
        assert_eq!(repr(d), "{(1, 'a'): [None]}");
    }

    #[test]
    fn huge_ints_are_written_in_hexadecimal() {
        let big = PyValue::from(num_bigint::BigInt::from(1) << 20_000u32);
        let r = repr(big);
        assert!(r.starts_with("0x1000"), "{}", &r[..10]);
        assert_eq!(r.len(), 2 + 1 + 5000);
    }
}
