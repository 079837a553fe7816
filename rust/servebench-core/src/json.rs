//! A JSON reader that gives the answers CPython 3.11's `json` module gives to
//! `servebench.contract.decode_json`, down to the error text and position.
//!
//! It follows the C scanner (`Modules/_json.c`) step by step rather than a JSON grammar, because
//! the contract pins behaviour that a conforming parser is free to choose differently: which of
//! several faults is reported, that a duplicate key surfaces only once its object has been read
//! to the closing brace (the `object_pairs_hook` runs then), that `\ud800` is a valid string,
//! that integers have a 4300-digit limit, and the exact `JSONDecodeError` messages.
//!
//! Strings are kept as WTF-8 bytes: UTF-8 that may also hold lone surrogates, which Python strings
//! can carry and a Rust `String` cannot. Byte order of WTF-8 equals code point order, so sorting
//! keys here sorts them the way Python does.

use std::borrow::Cow;

use crate::contract::ContractError;

/// Python raises RecursionError when the C scanner nests close to the interpreter's recursion
/// limit (1000): a bare `decode_json` call fails from 994 levels on 3.11.7, a call made deeper in
/// a server's stack a little earlier. Both roads lead to the same 400, so only the point where the
/// scan stops differs, and that only shows in documents that are broken in two ways at once.
pub const PARSE_DEPTH_LIMIT: usize = 993;

/// CPython's default `sys.get_int_max_str_digits()`.
const INT_MAX_STR_DIGITS: usize = 4300;

/// A decoded JSON value. Integers keep their exactness while they fit an `i64`; larger ones only
/// ever fail a range check, for which their nearest double is as good as the exact value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    BigInt(f64),
    Float(f64),
    Str(Cow<'a, [u8]>),
    Array(Vec<Value<'a>>),
    Object(Vec<(Cow<'a, [u8]>, Value<'a>)>),
}

impl<'a> Value<'a> {
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_ref() == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A decoded document and the deepest nesting of arrays and objects in it (a scalar is depth 0).
#[derive(Debug)]
pub struct Document<'a> {
    pub value: Value<'a>,
    pub depth: usize,
}

enum Fail {
    /// Python's StopIteration(idx): no value starts at `idx`; becomes "Expecting value".
    Stop(usize),
    /// A JSONDecodeError with its message and byte position.
    Syntax(&'static str, usize),
    /// Anything raised with a final message (hooks, number limits, recursion).
    Contract(ContractError),
}

type Scan<'a, T> = Result<T, Fail>;

/// Decode a request body exactly as `contract.decode_json` does.
pub fn decode(body: &[u8]) -> Result<Document<'_>, ContractError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ContractError::bad_json("malformed JSON: body is not UTF-8"));
    }
    let mut scanner = Scanner {
        s: body,
        depth: 0,
        max_depth: 0,
    };
    let result = scanner.decode();
    match result {
        Ok(value) => Ok(Document {
            value,
            depth: scanner.max_depth,
        }),
        Err(Fail::Stop(pos)) => Err(syntax_error(body, "Expecting value", pos)),
        Err(Fail::Syntax(msg, pos)) => Err(syntax_error(body, msg, pos)),
        Err(Fail::Contract(err)) => Err(err),
    }
}

/// `JSONDecodeError.__str__`: positions count code points, lines and columns start at 1.
fn syntax_error(s: &[u8], msg: &str, pos: usize) -> ContractError {
    let pos = pos.min(s.len());
    let before = &s[..pos];
    let chars = |bytes: &[u8]| bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count();
    let char_pos = chars(before);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => char_pos - chars(&before[..nl]),
        None => char_pos + 1,
    };
    ContractError::bad_json(format!(
        "malformed JSON: {msg}: line {line} column {column} (char {char_pos})"
    ))
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

struct Scanner<'a> {
    s: &'a [u8],
    depth: usize,
    max_depth: usize,
}

impl<'a> Scanner<'a> {
    fn skip_ws(&self, mut idx: usize) -> usize {
        while idx < self.s.len() && is_ws(self.s[idx]) {
            idx += 1;
        }
        idx
    }

    fn at(&self, idx: usize) -> Option<u8> {
        self.s.get(idx).copied()
    }

    fn decode(&mut self) -> Scan<'a, Value<'a>> {
        let start = self.skip_ws(0);
        let (value, end) = self.scan_once(start)?;
        let end = self.skip_ws(end);
        if end != self.s.len() {
            return Err(Fail::Syntax("Extra data", end));
        }
        Ok(value)
    }

    fn scan_once(&mut self, idx: usize) -> Scan<'a, (Value<'a>, usize)> {
        let s = self.s;
        let len = s.len();
        let Some(first) = self.at(idx) else {
            return Err(Fail::Stop(idx));
        };
        let follows =
            |lit: &[u8]| s.len() > idx + lit.len() && &s[idx + 1..=idx + lit.len()] == lit;
        match first {
            b'"' => {
                let (text, next) = self.scan_string(idx + 1)?;
                return Ok((Value::Str(text), next));
            }
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth > PARSE_DEPTH_LIMIT {
                    return Err(Fail::Contract(ContractError::too_deep()));
                }
                self.max_depth = self.max_depth.max(self.depth);
                let result = if first == b'{' {
                    self.parse_object(idx + 1)
                } else {
                    self.parse_array(idx + 1)
                };
                self.depth -= 1;
                return result;
            }
            b'n' if follows(b"ull") => return Ok((Value::Null, idx + 4)),
            b't' if follows(b"rue") => return Ok((Value::Bool(true), idx + 4)),
            b'f' if follows(b"alse") => return Ok((Value::Bool(false), idx + 5)),
            b'N' if follows(b"aN") => return Err(constant("NaN")),
            b'I' if follows(b"nfinity") => return Err(constant("Infinity")),
            b'-' if follows(b"Infinity") => return Err(constant("-Infinity")),
            _ => {}
        }
        debug_assert!(idx < len);
        self.match_number(idx)
    }

    fn parse_object(&mut self, mut idx: usize) -> Scan<'a, (Value<'a>, usize)> {
        let s = self.s;
        let mut pairs: Vec<(Cow<'a, [u8]>, Value<'a>)> = Vec::new();
        idx = self.skip_ws(idx);
        if self.at(idx) != Some(b'}') {
            loop {
                if self.at(idx) != Some(b'"') {
                    return Err(Fail::Syntax(
                        "Expecting property name enclosed in double quotes",
                        idx,
                    ));
                }
                let (key, next) = self.scan_string(idx + 1)?;
                idx = self.skip_ws(next);
                if self.at(idx) != Some(b':') {
                    return Err(Fail::Syntax("Expecting ':' delimiter", idx));
                }
                idx = self.skip_ws(idx + 1);
                let (value, next) = self.scan_once(idx)?;
                pairs.push((key, value));
                idx = self.skip_ws(next);
                match s.get(idx) {
                    Some(b'}') => break,
                    Some(b',') => idx = self.skip_ws(idx + 1),
                    _ => return Err(Fail::Syntax("Expecting ',' delimiter", idx)),
                }
            }
        }
        if let Some(key) = first_duplicate(&pairs) {
            return Err(Fail::Contract(ContractError::duplicate_key(key)));
        }
        Ok((Value::Object(pairs), idx + 1))
    }

    fn parse_array(&mut self, mut idx: usize) -> Scan<'a, (Value<'a>, usize)> {
        let s = self.s;
        let mut items = Vec::new();
        idx = self.skip_ws(idx);
        if self.at(idx) != Some(b']') {
            loop {
                let (value, next) = self.scan_once(idx)?;
                items.push(value);
                idx = self.skip_ws(next);
                match s.get(idx) {
                    Some(b']') => break,
                    Some(b',') => idx = self.skip_ws(idx + 1),
                    _ => return Err(Fail::Syntax("Expecting ',' delimiter", idx)),
                }
            }
        }
        Ok((Value::Array(items), idx + 1))
    }

    /// `scanstring_unicode`. `end` is just past the opening quote. Byte offsets stand in for the
    /// C code's code point offsets: every byte it tests for is ASCII, and a multi-byte character
    /// fails those tests whole, so each check has the same outcome in either unit.
    fn scan_string(&self, mut end: usize) -> Scan<'a, (Cow<'a, [u8]>, usize)> {
        let s = self.s;
        let len = s.len();
        let begin = end - 1;
        let mut out: Option<Vec<u8>> = None;
        loop {
            let mut next = end;
            while next < len {
                let d = s[next];
                if d == b'"' || d == b'\\' {
                    break;
                }
                if d <= 0x1f {
                    return Err(Fail::Syntax("Invalid control character at", next));
                }
                next += 1;
            }
            if next == len {
                return Err(Fail::Syntax("Unterminated string starting at", begin));
            }
            if s[next] == b'"' {
                return Ok(match out {
                    None => (Cow::Borrowed(&s[end..next]), next + 1),
                    Some(mut buf) => {
                        buf.extend_from_slice(&s[end..next]);
                        (Cow::Owned(buf), next + 1)
                    }
                });
            }
            let buf = out.get_or_insert_with(Vec::new);
            buf.extend_from_slice(&s[end..next]);
            next += 1;
            if next == len {
                return Err(Fail::Syntax("Unterminated string starting at", begin));
            }
            let c = s[next];
            if c != b'u' {
                end = next + 1;
                let decoded = match c {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    _ => return Err(Fail::Syntax("Invalid \\escape", end - 2)),
                };
                buf.push(decoded);
                continue;
            }
            next += 1;
            end = next + 4;
            if end >= len {
                return Err(Fail::Syntax("Invalid \\uXXXX escape", next - 1));
            }
            let mut code =
                hex4(&s[next..end]).ok_or(Fail::Syntax("Invalid \\uXXXX escape", end - 5))?;
            next = end;
            if (0xD800..=0xDBFF).contains(&code)
                && end + 6 < len
                && s[next] == b'\\'
                && s[next + 1] == b'u'
            {
                let second = end + 2;
                end += 6;
                let low =
                    hex4(&s[second..end]).ok_or(Fail::Syntax("Invalid \\uXXXX escape", end - 5))?;
                if (0xDC00..=0xDFFF).contains(&low) {
                    code = 0x10000 + (((code - 0xD800) << 10) | (low - 0xDC00));
                } else {
                    end -= 6;
                }
            }
            push_wtf8(buf, code);
        }
    }

    /// `_match_number_unicode` followed by the contract's `parse_float` / `parse_int`.
    fn match_number(&self, start: usize) -> Scan<'a, (Value<'a>, usize)> {
        let s = self.s;
        let end_idx = s.len() - 1;
        let digit = |i: usize| s[i].is_ascii_digit();
        let mut idx = start;
        if s[idx] == b'-' {
            idx += 1;
            if idx > end_idx {
                return Err(Fail::Stop(start));
            }
        }
        if (b'1'..=b'9').contains(&s[idx]) {
            idx += 1;
            while idx <= end_idx && digit(idx) {
                idx += 1;
            }
        } else if s[idx] == b'0' {
            idx += 1;
        } else {
            return Err(Fail::Stop(start));
        }
        let mut is_float = false;
        if idx < end_idx && s[idx] == b'.' && digit(idx + 1) {
            is_float = true;
            idx += 2;
            while idx <= end_idx && digit(idx) {
                idx += 1;
            }
        }
        if idx < end_idx && (s[idx] == b'e' || s[idx] == b'E') {
            let e_start = idx;
            idx += 1;
            if idx < end_idx && (s[idx] == b'-' || s[idx] == b'+') {
                idx += 1;
            }
            while idx <= end_idx && digit(idx) {
                idx += 1;
            }
            if digit(idx - 1) {
                is_float = true;
            } else {
                idx = e_start;
            }
        }
        // The slice is ASCII by construction.
        let text = std::str::from_utf8(&s[start..idx]).unwrap_or_default();
        let value = if is_float {
            let value: f64 = text.parse().unwrap_or(f64::INFINITY);
            if value.is_infinite() {
                return Err(Fail::Contract(ContractError::bad_json(format!(
                    "malformed JSON: number {} is too large for a double",
                    &text[..text.len().min(40)]
                ))));
            }
            Value::Float(value)
        } else {
            let digits = text.len() - usize::from(text.starts_with('-'));
            if digits > INT_MAX_STR_DIGITS {
                return Err(Fail::Contract(ContractError::bad_json(format!(
                    "malformed JSON: Exceeds the limit ({INT_MAX_STR_DIGITS} digits) for integer \
                     string conversion: value has {digits} digits; use \
                     sys.set_int_max_str_digits() to increase the limit"
                ))));
            }
            match text.parse::<i64>() {
                Ok(value) => Value::Int(value),
                Err(_) => {
                    let value: f64 = text.parse().unwrap_or(f64::INFINITY);
                    if value.is_infinite() {
                        return Err(Fail::Contract(ContractError::bad_json(format!(
                            "malformed JSON: number {}... is too large for a double",
                            &text[..text.len().min(40)]
                        ))));
                    }
                    Value::BigInt(value)
                }
            }
        };
        Ok((value, idx))
    }
}

fn constant(name: &str) -> Fail {
    Fail::Contract(ContractError::bad_json(format!(
        "malformed JSON: {name} is not a JSON number"
    )))
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some((acc << 4) | v)
    })
}

/// UTF-8 encoding extended to surrogate code points (WTF-8).
fn push_wtf8(buf: &mut Vec<u8>, code: u32) {
    match code {
        0..=0x7F => buf.push(code as u8),
        0x80..=0x7FF => {
            buf.extend_from_slice(&[0xC0 | (code >> 6) as u8, 0x80 | (code & 0x3F) as u8])
        }
        0x800..=0xFFFF => buf.extend_from_slice(&[
            0xE0 | (code >> 12) as u8,
            0x80 | ((code >> 6) & 0x3F) as u8,
            0x80 | (code & 0x3F) as u8,
        ]),
        _ => buf.extend_from_slice(&[
            0xF0 | (code >> 18) as u8,
            0x80 | ((code >> 12) & 0x3F) as u8,
            0x80 | ((code >> 6) & 0x3F) as u8,
            0x80 | (code & 0x3F) as u8,
        ]),
    }
}

/// The key `_unique_keys` raises on: the first pair whose key an earlier pair already used.
fn first_duplicate<'k>(pairs: &'k [(Cow<'_, [u8]>, Value<'_>)]) -> Option<&'k [u8]> {
    // Quadratic is cheapest for passenger-sized objects; a hash set keeps a hostile body with
    // thousands of keys linear.
    if pairs.len() <= 16 {
        for (i, (key, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(k, _)| k == key) {
                return Some(key);
            }
        }
        return None;
    }
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    pairs
        .iter()
        .map(|(k, _)| k.as_ref())
        .find(|&key| !seen.insert(key))
}

/// Append `text` (WTF-8) to `out` as a JSON string literal. Lone surrogates become `\uXXXX`
/// escapes so the output stays valid UTF-8 and a JSON reader gets the same code points back.
pub fn write_json_string(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'"');
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            0xED if i + 2 < text.len() && text[i + 1] >= 0xA0 => {
                let code = (u32::from(b & 0x0F) << 12)
                    | (u32::from(text[i + 1] & 0x3F) << 6)
                    | u32::from(text[i + 2] & 0x3F);
                out.extend_from_slice(format!("\\u{code:04x}").as_bytes());
                i += 3;
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match decode(body.as_bytes()) {
            Ok(doc) => panic!("{body:?} decoded to {:?}", doc.value),
            Err(e) => e.message_lossy(),
        }
    }

    #[test]
    fn messages_match_python() {
        assert_eq!(
            err("[1,]"),
            "malformed JSON: Expecting value: line 1 column 4 (char 3)"
        );
        assert_eq!(
            err("{\"a\":1,}"),
            "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"
        );
        assert_eq!(
            err("\"\\u12x4\""),
            "malformed JSON: Invalid \\uXXXX escape: line 1 column 3 (char 2)"
        );
        assert_eq!(
            err("1."),
            "malformed JSON: Extra data: line 1 column 2 (char 1)"
        );
        assert_eq!(
            err("\n\"é\n"),
            "malformed JSON: Invalid control character at: line 2 column 3 (char 3)"
        );
        assert_eq!(
            err(""),
            "malformed JSON: Expecting value: line 1 column 1 (char 0)"
        );
        assert_eq!(
            err("-Infinity"),
            "malformed JSON: -Infinity is not a JSON number"
        );
    }

    #[test]
    fn duplicate_reported_when_its_object_closes() {
        let e = decode(br#"{"a": 1, "a": 2, "b": {"c": 1, "c": 2}}"#).unwrap_err();
        assert_eq!(e.field_lossy().as_deref(), Some("c"));
        let e = decode(br#"{"a": 1, "a": 2"#).unwrap_err();
        assert_eq!(e.field_lossy(), None);
    }

    #[test]
    fn lone_surrogates_survive() {
        let doc = decode(br#"{"\ud800": "\udc00\ud83d\ude00"}"#).unwrap();
        let Value::Object(pairs) = doc.value else {
            panic!()
        };
        assert_eq!(pairs[0].0.as_ref(), b"\xed\xa0\x80");
        assert_eq!(
            pairs[0].1,
            Value::Str(Cow::Borrowed(b"\xed\xb0\x80\xf0\x9f\x98\x80"))
        );
        let mut out = Vec::new();
        write_json_string(&mut out, b"\xed\xa0\x80x\"\x01");
        assert_eq!(out, br#""\ud800x\"\u0001""#);
    }

    #[test]
    fn numbers() {
        let doc = decode(b"[0, -0, 1e5, 12345678901234567890, -0.0, 1E+2]").unwrap();
        assert_eq!(
            doc.value,
            Value::Array(vec![
                Value::Int(0),
                Value::Int(0),
                Value::Float(1e5),
                Value::BigInt(12345678901234567890.0),
                Value::Float(-0.0),
                Value::Float(100.0),
            ])
        );
        assert_eq!(doc.depth, 1);
    }

    #[test]
    fn depth_limit_stops_the_scan() {
        let deep = "[".repeat(PARSE_DEPTH_LIMIT + 1);
        let e = decode(deep.as_bytes()).unwrap_err();
        assert_eq!(
            e.message_lossy(),
            "malformed JSON: nested deeper than 32 levels"
        );
        let ok = format!(
            "{}{}",
            "[".repeat(PARSE_DEPTH_LIMIT),
            "]".repeat(PARSE_DEPTH_LIMIT)
        );
        assert_eq!(decode(ok.as_bytes()).unwrap().depth, PARSE_DEPTH_LIMIT);
    }
}
