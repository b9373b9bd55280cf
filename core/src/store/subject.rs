//! The store's own small subject checks and wildcard matcher (`*` one token, `>` the rest).

use super::StoreError;

/// Longest subject the record format can hold.
const MAX_SUBJECT_LEN: usize = u16::MAX as usize;

fn check_tokens(s: &str, wildcards: bool) -> bool {
    if s.is_empty() || s.len() > MAX_SUBJECT_LEN || s.contains([' ', '\t', '\r', '\n']) {
        return false;
    }
    let mut tokens = s.split('.').peekable();
    while let Some(t) = tokens.next() {
        let last = tokens.peek().is_none();
        match t {
            "" => return false,
            "*" if !wildcards => return false,
            ">" if !wildcards || !last => return false,
            _ => {}
        }
    }
    true
}

/// Check a literal subject (what messages are stored under): dot-separated non-empty
/// tokens, no whitespace, no wildcard tokens.
pub fn validate_subject(subject: &str) -> Result<(), StoreError> {
    if check_tokens(subject, false) { Ok(()) } else { Err(StoreError::InvalidSubject(subject.to_string())) }
}

/// Check a subject filter: like a subject, but `*` tokens and a final `>` token are allowed.
pub fn validate_filter(filter: &str) -> Result<(), StoreError> {
    if check_tokens(filter, true) { Ok(()) } else { Err(StoreError::InvalidSubject(filter.to_string())) }
}

/// Whether a valid filter has no wildcard tokens.
pub(crate) fn is_literal(filter: &str) -> bool {
    !filter.split('.').any(|t| t == "*" || t == ">")
}

/// Whether `subject` matches `filter` (`*` matches one token, a final `>` one or more).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(subject_matches("a.*", "a.b"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches(">", "x"));
        assert!(subject_matches("*.b.>", "a.b.c.d"));
        assert!(!subject_matches("*.b.>", "a.c.c.d"));
    }

    #[test]
    fn validation() {
        assert!(validate_subject("a.b").is_ok());
        assert!(validate_subject("a.*").is_err());
        assert!(validate_subject("a..b").is_err());
        assert!(validate_subject("").is_err());
        assert!(validate_subject("a b").is_err());
        assert!(validate_filter("a.*.>").is_ok());
        assert!(validate_filter("a.>.b").is_err());
        assert!(is_literal("a.b") && !is_literal("a.*"));
    }
}
