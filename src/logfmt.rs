//! Values of the `key=value` fields in log lines, so a line reads the same
//! whichever room writes it and a tool can split it:
//!
//! `refused upgrade store="x" peer=1.2.3.4:5 protocol=0.4-ws reason="Invalid auth token"`
//!
//! The event comes first, then the fields: `store` (always quoted: any
//! string is a store id), `peer`, `protocol` (`0.3`, `0.4-ws`, `0.4-http`),
//! `reason`, and others. A value is written bare when it is a plain word
//! (letters, digits, `._:/@+-[]`), else quoted with Rust's string escapes,
//! so a space, a quote or a newline sent by a client cannot forge a field
//! or a line. Never log a token, a secret or a whole query string.

use std::fmt;

/// A field value, quoted only when it needs to be.
pub struct Value<'a>(pub &'a str);

/// A field value, always quoted (store ids).
pub struct Quoted<'a>(pub &'a str);

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '.' | '_' | ':' | '/' | '@' | '+' | '-' | '[' | ']')
        })
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plain(self.0) {
            f.write_str(self.0)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// `value`, quoted when it needs to be.
pub fn value(s: &str) -> Value<'_> {
    Value(s)
}

/// `value`, always quoted.
pub fn quoted(s: &str) -> Quoted<'_> {
    Quoted(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_bare_and_the_rest_is_quoted() {
        assert_eq!(value("1.2.3.4:5").to_string(), "1.2.3.4:5");
        assert_eq!(value("[::1]:80").to_string(), "[::1]:80");
        assert_eq!(value("0.4-ws").to_string(), "0.4-ws");
        assert_eq!(value("bad auth token").to_string(), "\"bad auth token\"");
        assert_eq!(value("").to_string(), "\"\"");
        assert_eq!(value("a=b").to_string(), "\"a=b\"");
        assert_eq!(value("say \"hi\"").to_string(), r#""say \"hi\"""#);
        // A newline cannot start a forged line.
        assert_eq!(value("x\n<3>y").to_string(), r#""x\n<3>y""#);
        assert_eq!(quoted("x").to_string(), "\"x\"");
    }
}
