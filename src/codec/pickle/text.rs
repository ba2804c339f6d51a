//! The text arguments of protocol-0 opcodes: `STRING`'s quoted literal and `UNICODE`'s
//! raw-unicode-escape text, decoded as CPython decodes them. Pure code.

/// A `STRING` argument: a quoted Python 2 `str` literal (`'a\'b'`, `"x\x00"`), as
/// `codecs.escape_decode` reads it after the quotes are stripped.
pub(super) fn unquote(line: &[u8]) -> Option<Vec<u8>> {
    let (&open, rest) = line.split_first()?;
    let (&close, body) = rest.split_last()?;
    if open != close || !matches!(open, b'\'' | b'"') {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'x' => {
                let hex = body.get(i..i + 2)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut n = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            n = n * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((n & 0xff) as u8);
            }
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    Some(out)
}

/// A `UNICODE` argument: raw-unicode-escape, where bytes are Latin-1 characters and
/// `\uXXXX` / `\UXXXXXXXX` escape the others (only after an odd run of backslashes).
/// `None` when an escape is malformed or names a surrogate.
pub(super) fn raw_unicode_escape(line: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] != b'\\' {
            out.push(char::from(line[i]));
            i += 1;
            continue;
        }
        let run = line[i..].iter().take_while(|&&b| b == b'\\').count();
        i += run;
        let escape = match line.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => 0,
        };
        out.extend(std::iter::repeat_n(
            '\\',
            if escape > 0 { run - 1 } else { run },
        ));
        if escape > 0 {
            let hex = std::str::from_utf8(line.get(i + 1..i + 1 + escape)?).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
            i += 1 + escape;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_decode_as_escape_decode_does() {
        assert_eq!(unquote(b"'abc'").unwrap(), b"abc");
        assert_eq!(unquote(br#""a'b""#).unwrap(), b"a'b");
        assert_eq!(
            unquote(br"'\x00\xff\n\\\'\101\7z\q'").unwrap(),
            b"\x00\xff\n\\'A\x07z\\q"
        );
        for bad in [&b""[..], b"'", b"'abc", b"abc", b"'a\"", br"'\x4'", br"'\'"] {
            assert!(unquote(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn raw_unicode_escape_decodes_as_python_does() {
        // What Python 3 writes for 'h\xe9\\\n\u2603\U0001d11e' at protocol 0.
        let line = b"h\xe9\\u005c\\u000a\\u2603\\U0001d11e";
        assert_eq!(
            raw_unicode_escape(line).unwrap(),
            "h\u{e9}\\\n\u{2603}\u{1d11e}"
        );
        // An even run of backslashes is literal.
        assert_eq!(raw_unicode_escape(br"\\u0041").unwrap(), r"\\u0041");
        assert_eq!(raw_unicode_escape(br"\\\u0041").unwrap(), r"\\A");
        for bad in [&br"\u12"[..], br"\ud800", br"\U00110000", br"\u12g4"] {
            assert!(raw_unicode_escape(bad).is_none(), "{bad:?}");
        }
    }
}
