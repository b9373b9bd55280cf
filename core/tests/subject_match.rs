//! Subject validation and wildcard matching edge cases.

use weir_core::subject::{
    MAX_SUBJECT_LEN, MAX_SUBJECT_TOKENS, SubjectError, has_wildcards, is_valid_literal, is_valid_pattern, matches,
    validate_literal, validate_pattern, validate_queue,
};

#[test]
fn valid_subscription_subjects() {
    for s in ["foo", "foo.bar", "*", ">", "foo.*", "foo.>", "*.*.>", "foo.*.bar", "foo*", "f>o", "a.b*.c", "$JS.API.>"]
    {
        assert_eq!(validate_pattern(s), Ok(()), "{s}");
    }
}

#[test]
fn invalid_subjects() {
    let cases: &[(&str, SubjectError)] = &[
        ("", SubjectError::Empty),
        (".", SubjectError::EmptyToken { index: 0 }),
        (".foo", SubjectError::EmptyToken { index: 0 }),
        ("foo.", SubjectError::EmptyToken { index: 1 }),
        ("foo..bar", SubjectError::EmptyToken { index: 1 }),
        ("foo bar", SubjectError::ForbiddenByte { byte: b' ' }),
        ("foo\tbar", SubjectError::ForbiddenByte { byte: b'\t' }),
        ("foo.\r", SubjectError::ForbiddenByte { byte: b'\r' }),
        ("foo\n", SubjectError::ForbiddenByte { byte: b'\n' }),
        ("a\x0cb", SubjectError::ForbiddenByte { byte: 0x0c }),
        ("a\0b", SubjectError::ForbiddenByte { byte: 0 }),
        (">.foo", SubjectError::FullWildcardNotLast),
        ("foo.>.bar", SubjectError::FullWildcardNotLast),
        (">.>", SubjectError::FullWildcardNotLast),
    ];
    for (s, e) in cases {
        assert_eq!(validate_pattern(s).as_ref(), Err(e), "{s:?}");
        assert!(!is_valid_pattern(s));
        assert!(!is_valid_literal(s));
    }
}

#[test]
fn publish_subjects_are_literal() {
    for s in ["foo", "foo.bar", "foo*", "a.b>", "*a", "$JS.API.INFO"] {
        assert_eq!(validate_literal(s), Ok(()), "{s}");
    }
    for s in ["*", ">", "foo.*", "foo.>", "*.bar"] {
        assert_eq!(validate_literal(s), Err(SubjectError::WildcardInLiteral), "{s}");
        assert!(is_valid_pattern(s));
        assert!(has_wildcards(s));
    }
    assert!(!has_wildcards("foo*.b>r"));
}

#[test]
fn length_and_token_limits() {
    let long = "a".repeat(MAX_SUBJECT_LEN);
    assert_eq!(validate_pattern(&long), Ok(()));
    let too_long = "a".repeat(MAX_SUBJECT_LEN + 1);
    assert_eq!(
        validate_pattern(&too_long),
        Err(SubjectError::TooLong { len: MAX_SUBJECT_LEN + 1, max: MAX_SUBJECT_LEN })
    );
    let max_tokens = vec!["a"; MAX_SUBJECT_TOKENS].join(".");
    assert_eq!(validate_pattern(&max_tokens), Ok(()));
    let too_many = vec!["a"; MAX_SUBJECT_TOKENS + 1].join(".");
    assert_eq!(validate_pattern(&too_many), Err(SubjectError::TooManyTokens { max: MAX_SUBJECT_TOKENS }));
}

#[test]
fn queue_names() {
    assert_eq!(validate_queue("workers"), Ok(()));
    assert_eq!(validate_queue("a.b*>"), Ok(()));
    assert_eq!(validate_queue(""), Err(SubjectError::EmptyQueue));
    assert_eq!(validate_queue("a b"), Err(SubjectError::InvalidQueue));
}

#[test]
fn wildcard_semantics() {
    let yes = [
        ("foo", "foo"),
        ("foo.bar", "foo.bar"),
        ("*", "foo"),
        (">", "foo"),
        (">", "foo.bar.baz"),
        ("foo.*", "foo.bar"),
        ("foo.>", "foo.bar"),
        ("foo.>", "foo.bar.baz"),
        ("*.bar", "foo.bar"),
        ("*.*", "a.b"),
        ("foo.*.baz", "foo.bar.baz"),
        ("*.>", "a.b"),
        ("foo.*.>", "foo.a.b.c"),
        // Wildcard characters inside a token are literal.
        ("foo*", "foo*"),
        ("foo.b>r", "foo.b>r"),
        // Subject tokens are literal: a `*` token in a subject is just the text `*`.
        ("foo.*", "foo.*"),
        ("foo.>", "foo.>"),
    ];
    for (p, s) in yes {
        assert!(matches(p, s), "{p} should match {s}");
    }
    let no = [
        ("foo", "bar"),
        ("foo", "foo.bar"),
        ("foo.bar", "foo"),
        ("*", "foo.bar"),
        ("foo.*", "foo"),
        ("foo.*", "foo.bar.baz"),
        ("foo.>", "foo"),
        (">", ""),
        ("*", ""),
        ("foo.*.baz", "foo.bar.qux"),
        ("*.>", "a"),
        ("foo*", "foobar"),
        ("foo*", "foo"),
        ("foo.b>r", "foo.bar"),
        ("foo.*", "bar.foo"),
        // Subjects with empty tokens match nothing.
        (">", "foo..bar"),
        (">", ".foo"),
        ("*", "."),
        ("foo.>", "foo."),
        ("foo.*", "foo."),
        ("*.*", "a..b"),
    ];
    for (p, s) in no {
        assert!(!matches(p, s), "{p} should not match {s}");
    }
}

#[test]
fn literal_pattern_matches_only_itself() {
    for s in ["a", "a.b", "a.b.c"] {
        for t in ["a", "a.b", "a.b.c", "a.c", "b"] {
            assert_eq!(matches(s, t), s == t);
        }
    }
}
