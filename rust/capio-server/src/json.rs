//! A minimal JSON value and serialiser for the `Status` reply (the only JSON the server writes;
//! not worth a dependency). Byte strings that are not UTF-8 keep every byte: an undecodable byte
//! `b` becomes the escape `\udcXX` (`0xDC00 + b`), which Python decodes with `json.loads` into
//! the same `surrogateescape` string `os.fsdecode` gives, so `os.fsencode` gets the bytes back.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Vec<u8>),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    pub fn str(s: impl AsRef<[u8]>) -> Json {
        Json::Str(s.as_ref().to_vec())
    }

    pub fn int(n: impl Into<i128>) -> Json {
        Json::Int(n.into())
    }

    pub fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Json) -> Json {
        v.map_or(Json::Null, f)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        self.write(&mut out);
        out.into_bytes()
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Float(x) if x.is_finite() => {
                let _ = write!(out, "{x:?}");
            }
            Json::Float(_) => out.push_str("null"),
            Json::Str(bytes) => write_str(out, bytes),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, k.as_bytes());
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_str(out: &mut String, mut bytes: &[u8]) {
    out.push('"');
    while !bytes.is_empty() {
        let (valid, bad) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, None),
            Err(e) => {
                let (ok, rest) = bytes.split_at(e.valid_up_to());
                let n = e.error_len().unwrap_or(rest.len());
                (
                    std::str::from_utf8(ok).unwrap_or_default(),
                    Some(&rest[..n]),
                )
            }
        };
        for c in valid.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        let consumed = valid.len() + bad.map_or(0, <[u8]>::len);
        for &b in bad.unwrap_or_default() {
            let _ = write!(out, "\\u{:04x}", 0xdc00 + u32::from(b));
        }
        bytes = &bytes[consumed..];
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_nested_values() {
        let v = Json::Obj(vec![
            (
                "a",
                Json::Arr(vec![Json::int(1), Json::Null, Json::Bool(true)]),
            ),
            ("b", Json::Float(1.5)),
            ("c", Json::Float(f64::NAN)),
            ("d", Json::Obj(vec![])),
        ]);
        assert_eq!(
            String::from_utf8(v.to_bytes()).unwrap(),
            r#"{"a":[1,null,true],"b":1.5,"c":null,"d":{}}"#
        );
    }

    #[test]
    fn strings_escape_controls_and_keep_undecodable_bytes() {
        let v = Json::str(b"a \"q\"\\\n\t\x01\x7f \xc3\xa9 \xff\xfe end");
        assert_eq!(
            String::from_utf8(v.to_bytes()).unwrap(),
            "\"a \\\"q\\\"\\\\\\n\\t\\u0001\\u007f \u{e9} \\udcff\\udcfe end\""
        );
        // A truncated multi-byte sequence at the very end.
        assert_eq!(
            String::from_utf8(Json::str(b"x\xe2\x82").to_bytes()).unwrap(),
            "\"x\\udce2\\udc82\""
        );
    }
}
