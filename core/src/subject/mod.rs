//! Subjects: validation, wildcard matching and the subscription index.
//!
//! A subject is a string of tokens separated by `.`. In a subscription (a
//! *pattern*) a token that is exactly `*` matches any one token and a token that
//! is exactly `>` matches one or more trailing tokens; `>` may only be the last
//! token. A wildcard character inside a longer token (`foo*`, `a>b`) is literal.
//! Empty tokens (leading, trailing or doubled dots) are invalid, and so is any
//! whitespace (space, tab, CR, LF, form feed) or NUL byte anywhere in the subject.
//!
//! Limits (ours; nats-server has no fixed subject length and relies on the
//! control-line limit): at most [`MAX_SUBJECT_LEN`] bytes and
//! [`MAX_SUBJECT_TOKENS`] tokens. They keep the trie depth, and so the
//! recursion depth of lookups, bounded.

mod index;

pub use index::{Match, SubId, SubIndex};

/// Maximum length of a subject or pattern in bytes (the default control-line size).
pub const MAX_SUBJECT_LEN: usize = 4096;
/// Maximum number of tokens in a subject or pattern.
pub const MAX_SUBJECT_TOKENS: usize = 256;
/// The token separator.
pub const TOKEN_SEP: char = '.';
/// The single-token wildcard, valid only as a whole token.
pub const PARTIAL_WILDCARD: &str = "*";
/// The trailing multi-token wildcard, valid only as the last whole token.
pub const FULL_WILDCARD: &str = ">";

/// Why a subject, pattern or queue group name is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The subject is the empty string.
    #[error("subject is empty")]
    Empty,
    /// The subject is longer than [`MAX_SUBJECT_LEN`].
    #[error("subject is {len} bytes long, the maximum is {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The subject has more than [`MAX_SUBJECT_TOKENS`] tokens.
    #[error("subject has more than {max} tokens")]
    TooManyTokens {
        /// The limit.
        max: usize,
    },
    /// A token is empty (leading, trailing or doubled `.`).
    #[error("subject has an empty token at position {index}")]
    EmptyToken {
        /// Zero-based token position.
        index: usize,
    },
    /// The subject contains whitespace or a NUL byte.
    #[error("subject contains the forbidden byte {byte:#04x}")]
    ForbiddenByte {
        /// The offending byte.
        byte: u8,
    },
    /// `>` appears before the last token.
    #[error("'>' is only allowed as the last token")]
    FullWildcardNotLast,
    /// A publish subject contains a `*` or `>` token.
    #[error("wildcards are not allowed in a publish subject")]
    WildcardInPublish,
    /// The subject is not valid UTF-8 (raised by the protocol codec, which sees bytes).
    #[error("subject is not valid UTF-8")]
    NotUtf8,
    /// A queue group name is empty.
    #[error("queue group name is empty")]
    EmptyQueue,
    /// A queue group name is too long or contains whitespace or NUL.
    #[error("queue group name is invalid")]
    InvalidQueue,
}

/// Whether `b` may never appear in a subject (whitespace as nats-server defines it, and NUL).
#[inline]
fn forbidden(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0)
}

fn validate(subject: &str, allow_wildcards: bool) -> Result<(), SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty);
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(SubjectError::TooLong { len: subject.len(), max: MAX_SUBJECT_LEN });
    }
    let mut after_full_wildcard = false;
    for (index, token) in subject.split(TOKEN_SEP).enumerate() {
        if index >= MAX_SUBJECT_TOKENS {
            return Err(SubjectError::TooManyTokens { max: MAX_SUBJECT_TOKENS });
        }
        if after_full_wildcard {
            return Err(SubjectError::FullWildcardNotLast);
        }
        if token.is_empty() {
            return Err(SubjectError::EmptyToken { index });
        }
        if let Some(byte) = token.bytes().find(|&b| forbidden(b)) {
            return Err(SubjectError::ForbiddenByte { byte });
        }
        match token {
            PARTIAL_WILDCARD if !allow_wildcards => return Err(SubjectError::WildcardInPublish),
            FULL_WILDCARD if !allow_wildcards => return Err(SubjectError::WildcardInPublish),
            FULL_WILDCARD => after_full_wildcard = true,
            _ => {}
        }
    }
    Ok(())
}

/// Validate a subscription subject (a pattern): wildcards allowed.
pub fn validate_subject(subject: &str) -> Result<(), SubjectError> {
    validate(subject, true)
}

/// Validate a publish subject: a literal subject, no `*` or `>` tokens.
pub fn validate_publish_subject(subject: &str) -> Result<(), SubjectError> {
    validate(subject, false)
}

/// Validate a queue group name: non-empty, at most [`MAX_SUBJECT_LEN`] bytes, no whitespace or NUL.
pub fn validate_queue(queue: &str) -> Result<(), SubjectError> {
    if queue.is_empty() {
        return Err(SubjectError::EmptyQueue);
    }
    if queue.len() > MAX_SUBJECT_LEN || queue.bytes().any(forbidden) {
        return Err(SubjectError::InvalidQueue);
    }
    Ok(())
}

/// Whether `subject` is valid as a subscription subject.
pub fn is_valid_subject(subject: &str) -> bool {
    validate_subject(subject).is_ok()
}

/// Whether `subject` is valid as a publish subject.
pub fn is_valid_publish_subject(subject: &str) -> bool {
    validate_publish_subject(subject).is_ok()
}

/// Whether any token of `subject` is exactly `*` or `>` (no validation).
pub fn has_wildcards(subject: &str) -> bool {
    subject.split(TOKEN_SEP).any(|t| t == PARTIAL_WILDCARD || t == FULL_WILDCARD)
}

/// Whether `subject` can be matched at all: non-empty with no empty tokens.
///
/// Matching does not otherwise validate the subject: its tokens are compared
/// literally, so a `*` token in a *subject* is just the text `*`.
#[inline]
pub(crate) fn is_matchable(subject: &str) -> bool {
    !subject.is_empty() && !subject.starts_with(TOKEN_SEP) && !subject.ends_with(TOKEN_SEP) && !subject.contains("..")
}

/// Whether the pattern `pattern` matches the subject `subject`.
///
/// `*` in the pattern matches exactly one token and `>` one or more trailing
/// tokens. The subject's tokens are literal. A subject with an empty token never
/// matches. The pattern is not validated; for invalid patterns the answer is
/// whatever the token-by-token walk gives (a `>` matches the rest wherever it is).
pub fn matches(pattern: &str, subject: &str) -> bool {
    if !is_matchable(subject) {
        return false;
    }
    let mut p = pattern.split(TOKEN_SEP);
    let mut s = subject.split(TOKEN_SEP);
    loop {
        match (p.next(), s.next()) {
            (Some(FULL_WILDCARD), Some(_)) => return true,
            (Some(pt), Some(st)) => {
                if pt != PARTIAL_WILDCARD && pt != st {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether two patterns can match a common subject (nats-server's `SubjectsCollide`):
/// token by token, `*` meets any token, and a `>` meets the rest as long as the other
/// side still has at least one token. Used for stream subject overlap checks.
pub fn patterns_collide(a: &str, b: &str) -> bool {
    let mut x = a.split(TOKEN_SEP);
    let mut y = b.split(TOKEN_SEP);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(FULL_WILDCARD), Some(_)) | (Some(_), Some(FULL_WILDCARD)) => return true,
            (Some(p), Some(q)) => {
                if p != q && p != PARTIAL_WILDCARD && q != PARTIAL_WILDCARD {
                    return false;
                }
            }
            _ => return false,
        }
    }
}
