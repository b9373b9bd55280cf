//! The nats-server configuration file format, parsed into a tree of [`Node`]s.
//!
//! What the format allows (as nats-server's `conf` package, read in its lexer and parser):
//! - `key: value`, `key = value` and `key value`; a value ends at a newline, `;` or `,`.
//! - Maps `{ ... }` (a map may follow its key with no separator: `cluster { ... }`) and
//!   arrays `[ ... ]` whose items are separated by `,` or newlines.
//! - `#` and `//` comments, to the end of the line.
//! - Double-quoted strings with escapes (`\t \n \r \" \\ \uXXXX \xXX`), single-quoted raw
//!   strings, and bare strings (which end at whitespace, a newline, `;`, `,`, `]` or `}`).
//! - Bare words `true/false`, `yes/no`, `on/off` are booleans; bare numbers are integers or
//!   floats, and an integer may carry a size suffix (`k`=1000, `kb`/`ki`/`kib`=1024, likewise
//!   `m`, `g`, `t`, `p`, `e`; case-insensitive), so `8MB` is 8 MiB and `10G` 10^10.
//! - `$NAME` (bare) refers to a key defined earlier in an enclosing map, else to the
//!   environment variable `NAME`, whose text is parsed as a value (so `4222` is a number).
//! - `include "file"` (quoted or bare) parses another file, relative to the including
//!   file's directory, and merges its keys into the current map.
//!
//! Errors name the file, line and column: `weir.conf:3:9: unterminated string`.
//! Mapping the tree onto weir's settings (and unknown keys) is `crate::config`'s job.

mod parse;
mod units;

pub use parse::parse_file;
#[cfg(test)]
pub use parse::parse_str;
pub use units::{parse_duration, parse_size};

use std::fmt;
use std::sync::Arc;

/// Where a value (or an error) is: file, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    /// The file's path as given (or `<string>` for text parsed from memory).
    pub file: Arc<str>,
    /// Line, from 1.
    pub line: u32,
    /// Column (in characters), from 1.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A configuration error at a position: `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {msg}")]
pub struct ConfError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub msg: String,
}

impl ConfError {
    /// An error at `pos`.
    pub fn at(pos: &Pos, msg: impl Into<String>) -> ConfError {
        ConfError { pos: pos.clone(), msg: msg.into() }
    }
}

/// A parsed value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Quoted or bare text.
    Str(String),
    /// An integer, size suffixes applied.
    Int(i64),
    /// A float.
    Float(f64),
    /// `true/false`, `yes/no`, `on/off`.
    Bool(bool),
    /// `[ ... ]`.
    Array(Vec<Node>),
    /// `{ ... }`, or the whole file.
    Map(Map),
}

impl Value {
    /// The kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Array(_) => "an array",
            Value::Map(_) => "a map",
        }
    }
}

/// A value with where it was written and, for bare words, the text as written
/// (so that a duration field can read `2m` as two minutes instead of the integer 2,000,000).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the value starts.
    pub pos: Pos,
    /// The bare text of a number, when it had a suffix.
    pub raw: Option<String>,
}

/// A map's entries in file order; a repeated key replaces the earlier value (as in nats-server).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map {
    /// Key (as written), position of the key, value.
    pub entries: Vec<(String, Pos, Node)>,
    /// Keys of this map that were referred to as `$NAME` variables (nats-server does not
    /// report those as unknown fields).
    pub used_as_vars: Vec<String>,
}

impl Map {
    /// The value of `key` (exact match).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v)
    }

    /// Insert or replace `key`.
    pub fn insert(&mut self, key: String, pos: Pos, node: Node) {
        match self.entries.iter_mut().find(|(k, _, _)| *k == key) {
            Some(e) => *e = (key, pos, node),
            None => self.entries.push((key, pos, node)),
        }
    }
}
