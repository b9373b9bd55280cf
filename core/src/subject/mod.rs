//! Subjects: the one subject grammar of Weir (validation of literal subjects and
//! patterns, wildcard matching) and the subscription index.
//!
//! Every component uses these functions: the protocol codec (SUB patterns, pedantic
//! PUB subjects), the subscription index, the message store (stored subjects are
//! literals, filters are patterns) and the simulator's checkers.
//!
//! A subject is a string of tokens separated by `.`. A *literal* subject (what a
//! message is published and stored under) has no wildcard tokens. In a *pattern*
//! (a subscription, a stream's subjects, a consumer or purge filter) a token that is exactly `*` matches any one token and a token that
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
    /// A literal subject (publish, stored message) contains a `*` or `>` token.
    #[error("wildcards are not allowed in a literal subject")]
    WildcardInLiteral,
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
            PARTIAL_WILDCARD if !allow_wildcards => return Err(SubjectError::WildcardInLiteral),
            FULL_WILDCARD if !allow_wildcards => return Err(SubjectError::WildcardInLiteral),
            FULL_WILDCARD => after_full_wildcard = true,
            _ => {}
        }
    }
    Ok(())
}

/// Validate a pattern (subscription, stream subject, filter): wildcards allowed.
pub fn validate_pattern(subject: &str) -> Result<(), SubjectError> {
    validate(subject, true)
}

/// Validate a literal subject (publish, stored message): no `*` or `>` tokens.
pub fn validate_literal(subject: &str) -> Result<(), SubjectError> {
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

/// Whether `subject` is a valid pattern.
pub fn is_valid_pattern(subject: &str) -> bool {
    validate_pattern(subject).is_ok()
}

/// Whether `subject` is a valid literal subject.
pub fn is_valid_literal(subject: &str) -> bool {
    validate_literal(subject).is_ok()
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
