//! Subject transforms (`{src, dest}`), as nats-server's `subject_transform.go` maps
//! subjects for a stream's `subject_transform`, a source's `subject_transforms` and
//! `republish`.
//!
//! `src` is a subject pattern (`*` and a trailing `>`; empty means `>`). `dest` is
//! built token by token from literals and:
//! - `$N` or `{{wildcard(N)}}`: the subject token the N-th `*` of `src` matched (1-based);
//! - `{{partition(P, N, M...)}}`: a partition number in `0..P` from the FNV-1a 32 hash
//!   of the tokens the given wildcards matched (all wildcards when none are given),
//!   joined without separators, as nats-server's `getHashPartition`;
//! - `>` (last token): everything the trailing `>` of `src` matched.
//!
//! Other mapping functions (`split`, `splitFromLeft`, `slice...`) are refused by
//! [`SubjectTransform::new`] with a clear error (no outside test uses them yet).

use crate::subject::{is_valid_pattern, matches};

/// One token of a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// The 0-based index of a `*` wildcard of the source.
    Wildcard(usize),
    /// Partition count and the 0-based wildcard indexes hashed.
    Partition(u32, Vec<usize>),
    /// What the source's trailing `>` matched.
    Rest,
}

/// A checked transform (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectTransform {
    src: String,
    dest: Vec<Part>,
}

fn fnv1a32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl SubjectTransform {
    /// Check `src` and `dest` as nats-server's `NewSubjectTransform` does: both valid
    /// subjects, wildcard references within the source's `*` count, `>` in `dest` only
    /// last and only when `src` ends in `>`. Errors are texts for a 10052 reply.
    pub fn new(src: &str, dest: &str) -> Result<Self, String> {
        let src = if src.is_empty() { ">" } else { src };
        if !is_valid_pattern(src) {
            return Err(format!("invalid subject transform source {src:?}"));
        }
        let stars = src.split('.').filter(|t| *t == "*").count();
        let src_rest = src == ">" || src.ends_with(".>");
        let dest = if dest.is_empty() { ">" } else { dest };
        let toks: Vec<&str> = dest.split('.').collect();
        let mut parts = Vec::with_capacity(toks.len());
        let bad = |why: &str| format!("invalid subject transform destination {dest:?}: {why}");
        for (i, t) in toks.iter().enumerate() {
            let wildcard_ref = |n: &str| -> Result<usize, String> {
                let n: usize = n.trim().parse().map_err(|_| bad("wildcard index is not a number"))?;
                if n == 0 || n > stars {
                    return Err(bad("wildcard index out of range"));
                }
                Ok(n - 1)
            };
            if t.is_empty() {
                return Err(bad("empty token"));
            } else if *t == ">" {
                if i + 1 != toks.len() || !src_rest {
                    return Err(bad("'>' must be last and needs a source ending in '>'"));
                }
                parts.push(Part::Rest);
            } else if *t == "*" {
                return Err(bad("'*' is not allowed, use $N or {{wildcard(N)}}"));
            } else if let Some(n) =
                t.strip_prefix('$').filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                // `$1`; a token such as `$KV` is a literal.
                parts.push(Part::Wildcard(wildcard_ref(n)?));
            } else if let Some(inner) = t.strip_prefix("{{").and_then(|s| s.strip_suffix("}}")) {
                let inner = inner.trim();
                let (func, args) = inner
                    .split_once('(')
                    .and_then(|(f, a)| a.strip_suffix(')').map(|a| (f.trim(), a)))
                    .ok_or_else(|| bad("malformed mapping function"))?;
                let args: Vec<&str> = args.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
                match func.to_ascii_lowercase().as_str() {
                    "wildcard" if args.len() == 1 => parts.push(Part::Wildcard(wildcard_ref(args[0])?)),
                    "partition" if !args.is_empty() => {
                        let n: u32 = args[0].parse().map_err(|_| bad("partition count is not a number"))?;
                        if n == 0 {
                            return Err(bad("partition count must be positive"));
                        }
                        let idx = args[1..].iter().map(|a| wildcard_ref(a)).collect::<Result<Vec<_>, _>>()?;
                        let idx = if idx.is_empty() { (0..stars).collect() } else { idx };
                        parts.push(Part::Partition(n, idx));
                    }
                    other => return Err(bad(&format!("mapping function {other:?} is not supported by weir"))),
                }
            } else {
                parts.push(Part::Literal((*t).to_string()));
            }
        }
        Ok(SubjectTransform { src: src.to_string(), dest: parts })
    }

    /// The source pattern (`>` when it was given empty).
    pub fn source(&self) -> &str {
        &self.src
    }

    /// Whether `subject` matches the source pattern.
    pub fn matches(&self, subject: &str) -> bool {
        matches(&self.src, subject)
    }

    /// The mapped subject, or `None` when `subject` does not match the source.
    pub fn apply(&self, subject: &str) -> Option<String> {
        if !self.matches(subject) {
            return None;
        }
        let stoks: Vec<&str> = self.src.split('.').collect();
        let toks: Vec<&str> = subject.split('.').collect();
        let stars: Vec<&str> = stoks.iter().zip(&toks).filter(|(s, _)| **s == "*").map(|(_, t)| *t).collect();
        let rest = if stoks.last() == Some(&">") { toks[stoks.len() - 1..].join(".") } else { String::new() };
        let mut out: Vec<String> = Vec::with_capacity(self.dest.len());
        for p in &self.dest {
            match p {
                Part::Literal(l) => out.push(l.clone()),
                Part::Wildcard(i) => out.push(stars.get(*i)?.to_string()),
                Part::Partition(n, idx) => {
                    let key: String = idx.iter().filter_map(|i| stars.get(*i).copied()).collect();
                    out.push((fnv1a32(key.as_bytes()) % n).to_string());
                }
                Part::Rest => out.push(rest.clone()),
            }
        }
        Some(out.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_wildcards_rest_and_partitions() {
        let t = SubjectTransform::new(">", "transformed.>").unwrap();
        assert_eq!(t.apply("test").as_deref(), Some("transformed.test"));
        assert_eq!(t.apply("a.b").as_deref(), Some("transformed.a.b"));
        let t = SubjectTransform::new("", "fromtest.>").unwrap();
        assert_eq!(t.apply("transformed.test").as_deref(), Some("fromtest.transformed.test"));
        let t = SubjectTransform::new("orders.*.*", "by.{{wildcard(2)}}.$1").unwrap();
        assert_eq!(t.apply("orders.eu.42").as_deref(), Some("by.42.eu"));
        assert_eq!(t.apply("orders.eu"), None);
        let t = SubjectTransform::new("A.>", "$KV.test.>").unwrap();
        assert_eq!(t.apply("A.orange").as_deref(), Some("$KV.test.orange"));
        let t = SubjectTransform::new("stream2.foo.>", "foo.>").unwrap();
        assert_eq!(t.apply("stream2.foo.x.y").as_deref(), Some("foo.x.y"));
        let t = SubjectTransform::new("p.*", "part.{{partition(3,1)}}.$1").unwrap();
        let p = t.apply("p.key").unwrap();
        let n: u32 = p.split('.').nth(1).unwrap().parse().unwrap();
        assert!(n < 3);
        assert_eq!(p, format!("part.{}.key", fnv1a32(b"key") % 3));
        // FNV-1a 32 of "" is the offset basis; of "a" a known value.
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    }

    #[test]
    fn refuses_bad_mappings() {
        assert!(SubjectTransform::new("a.*", "b.$2").is_err());
        assert!(SubjectTransform::new("a.*", "b.>").is_err());
        assert!(SubjectTransform::new("a..b", "c").is_err());
        assert!(SubjectTransform::new("a.*", "b.*").is_err());
        assert!(SubjectTransform::new("a.*", "b.{{split($1,-)}}").unwrap_err().contains("not supported"));
        assert!(SubjectTransform::new("a.>", "b.>.c").is_err());
    }
}
