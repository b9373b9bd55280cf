//! A recursive-descent parser for the nats-server config format (see the module docs of `conf`).

use super::units::size_multiplier;
use super::{ConfError, Map, Node, Pos, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How deep `include`s may nest (a file including itself would otherwise recurse forever).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Looks up an environment variable (injectable so tests do not depend on the process).
pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parse the file at `path` (includes relative to its directory; `$NAME` falls back to
/// the process environment).
pub fn parse_file(path: &Path) -> Result<Map, ConfError> {
    parse_path(path, &|k: &str| std::env::var(k).ok(), 0)
}

/// Parse `text` as if it were the file `name` in directory `dir` (for includes).
#[cfg(test)]
pub fn parse_str(text: &str, name: &str, dir: &Path, env: EnvFn<'_>) -> Result<Map, ConfError> {
    Parser::new(text, name, dir.to_path_buf(), env, 0).document()
}

fn parse_path(path: &Path, env: EnvFn<'_>, depth: usize) -> Result<Map, ConfError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfError {
        pos: Pos { file: Arc::from(name.as_str()), line: 0, col: 0 },
        msg: format!("cannot read the file: {e}"),
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Parser::new(&text, &name, dir, env, depth).document()
}

struct Parser<'a> {
    src: &'a str,
    i: usize,
    file: Arc<str>,
    dir: PathBuf,
    line_starts: Vec<usize>,
    env: EnvFn<'a>,
    depth: usize,
    /// Maps being built, outermost first: `$NAME` looks in them innermost first.
    scopes: Vec<Map>,
    /// Environment variables being expanded (a cycle is an error).
    expanding: Vec<String>,
}

fn ends_bare(c: char) -> bool {
    c.is_whitespace() || matches!(c, ';' | ',' | ']' | '}')
}

fn ends_key(c: char) -> bool {
    c.is_whitespace() || matches!(c, '=' | ':' | '{' | '[' | ';' | ',' | '}' | '#')
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, name: &str, dir: PathBuf, env: EnvFn<'a>, depth: usize) -> Parser<'a> {
        let line_starts = std::iter::once(0).chain(src.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Parser {
            src,
            i: 0,
            file: Arc::from(name),
            dir,
            line_starts,
            env,
            depth,
            scopes: Vec::new(),
            expanding: Vec::new(),
        }
    }

    fn pos_of(&self, i: usize) -> Pos {
        let line = self.line_starts.partition_point(|&s| s <= i);
        let start = self.line_starts[line - 1];
        let col = self.src[start..i].chars().count() + 1;
        Pos { file: self.file.clone(), line: line as u32, col: col as u32 }
    }

    fn pos(&self) -> Pos {
        self.pos_of(self.i)
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, ConfError> {
        Err(ConfError::at(&self.pos(), msg))
    }

    fn peek(&self) -> Option<char> {
        self.src[self.i..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }

    fn at_comment(&self) -> bool {
        let rest = &self.src[self.i..];
        rest.starts_with('#') || rest.starts_with("//")
    }

    fn skip_comment(&mut self) {
        let end = self.src[self.i..].find('\n').map_or(self.src.len(), |n| self.i + n);
        self.i = end;
    }

    /// Spaces and tabs only (a value must start on its key's line).
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }

    /// Whitespace, newlines and comments.
    fn skip_space(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some(_) if self.at_comment() => self.skip_comment(),
                _ => return,
            }
        }
    }

    /// The whole file: its entries, or one map `{ ... }` holding them (JSON style, as the
    /// NATS Helm chart writes its `nats.conf`; nats-server reads both).
    fn document(mut self) -> Result<Map, ConfError> {
        self.skip_space();
        if self.peek() != Some('{') {
            return self.map_body(None);
        }
        let open = self.pos();
        self.bump();
        let map = self.map_body(Some(open))?;
        self.skip_space();
        match self.peek() {
            None => Ok(map),
            Some(c) => self.err(format!("unexpected '{c}' after the map that holds the whole file")),
        }
    }

    /// Entries up to the `}` closing a map opened at `open` (or to the end of the file).
    fn map_body(&mut self, open: Option<Pos>) -> Result<Map, ConfError> {
        self.scopes.push(Map::default());
        let r = self.map_entries(open.as_ref());
        let map = self.scopes.pop().unwrap_or_default();
        r.map(|()| map)
    }

    fn map_entries(&mut self, open: Option<&Pos>) -> Result<(), ConfError> {
        loop {
            self.skip_space();
            match self.peek() {
                None => {
                    return match open {
                        Some(p) => self.err(format!("unexpected end of file: the map opened at {p} has no '}}'")),
                        None => Ok(()),
                    };
                }
                Some('}') if open.is_some() => {
                    self.bump();
                    return Ok(());
                }
                Some(';' | ',') => {
                    self.bump();
                    continue;
                }
                Some(c @ ('}' | ']' | '=' | ':')) => return self.err(format!("unexpected '{c}'")),
                Some(_) => {}
            }
            let key_pos = self.pos();
            let (key, quoted) = self.key()?;
            self.skip_blanks();
            if !quoted && key == "include" && !matches!(self.peek(), Some('=' | ':' | '{' | '[') | None) {
                self.include(&key_pos)?;
            } else {
                if matches!(self.peek(), Some('=' | ':')) {
                    self.bump();
                    self.skip_blanks();
                }
                match self.peek() {
                    None | Some('\n' | '\r') => return self.err(format!("expected a value for '{key}'")),
                    Some(_) if self.at_comment() => return self.err(format!("expected a value for '{key}'")),
                    _ => {}
                }
                let node = self.value()?;
                if let Some(m) = self.scopes.last_mut() {
                    m.insert(key.clone(), key_pos, node);
                }
            }
            self.skip_blanks();
            match self.peek() {
                None | Some('\n' | '\r' | ';' | ',') => {}
                Some('}') if open.is_some() => {}
                Some(_) if self.at_comment() => {}
                Some(c) => return self.err(format!("expected a new line, ';' or ',' after '{key}', found '{c}'")),
            }
        }
    }

    /// A key: quoted (either quote) or bare. Returns it and whether it was quoted.
    fn key(&mut self) -> Result<(String, bool), ConfError> {
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.bump();
                let start = self.i;
                let end = self.src[start..].find(q).map(|n| start + n);
                match end {
                    Some(end) if !self.src[start..end].contains('\n') => {
                        self.i = end + 1;
                        Ok((self.src[start..end].to_owned(), true))
                    }
                    _ => self.err("unterminated quoted key"),
                }
            }
            _ => {
                let start = self.i;
                while self.peek().is_some_and(|c| !ends_key(c)) && !(self.i > start && self.at_comment()) {
                    self.bump();
                }
                if self.i == start {
                    return self.err("expected a key");
                }
                Ok((self.src[start..self.i].to_owned(), false))
            }
        }
    }

    fn include(&mut self, pos: &Pos) -> Result<(), ConfError> {
        let path = match self.peek() {
            Some('"' | '\'') => match self.value()?.value {
                Value::Str(s) => s,
                _ => return Err(ConfError::at(pos, "include needs a file name")),
            },
            _ => self.bare_word().to_owned(),
        };
        if path.is_empty() {
            return Err(ConfError::at(pos, "include needs a file name"));
        }
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(ConfError::at(pos, format!("includes nest deeper than {MAX_INCLUDE_DEPTH} (a cycle?)")));
        }
        let full = self.dir.join(&path);
        let included = parse_path(&full, self.env, self.depth + 1)
            .map_err(|e| ConfError::at(pos, format!("error in included file '{path}': {e}")))?;
        if let Some(m) = self.scopes.last_mut() {
            for (k, p, v) in included.entries {
                m.insert(k, p, v);
            }
        }
        Ok(())
    }

    fn bare_word(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(|c| !ends_bare(c)) {
            self.bump();
        }
        &self.src[start..self.i]
    }

    fn value(&mut self) -> Result<Node, ConfError> {
        let pos = self.pos();
        let node = |value| Node { value, pos: pos.clone(), raw: None };
        match self.peek() {
            Some('{') => {
                self.bump();
                Ok(node(Value::Map(self.map_body(Some(pos.clone()))?)))
            }
            Some('[') => {
                self.bump();
                Ok(node(Value::Array(self.array(&pos)?)))
            }
            Some('"') => {
                self.bump();
                Ok(node(Value::Str(self.dq_string(&pos)?)))
            }
            Some('\'') => {
                self.bump();
                let start = self.i;
                let end = self.src[start..].find('\'').map(|n| start + n);
                let Some(end) = end else { return Err(ConfError::at(&pos, "unterminated string")) };
                self.i = end + 1;
                Ok(node(Value::Str(self.src[start..end].to_owned())))
            }
            Some('(') => self.err("block strings '( ... )' are not supported"),
            _ => {
                let word = self.bare_word();
                self.bare(word, pos)
            }
        }
    }

    fn array(&mut self, open: &Pos) -> Result<Vec<Node>, ConfError> {
        let mut items = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None => {
                    return Err(ConfError::at(open, "unexpected end of file: this array has no ']'"));
                }
                Some(']') => {
                    self.bump();
                    return Ok(items);
                }
                Some(',') => return self.err("unexpected ',' in an array"),
                _ => {}
            }
            items.push(self.value()?);
            self.skip_blanks();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                None | Some(']' | '\n' | '\r') => {}
                Some(_) if self.at_comment() => {}
                Some(c) => return self.err(format!("expected ',' or ']' in an array, found '{c}'")),
            }
        }
    }

    fn dq_string(&mut self, open: &Pos) -> Result<String, ConfError> {
        let mut s = String::new();
        loop {
            let Some(c) = self.bump() else { return Err(ConfError::at(open, "unterminated string")) };
            match c {
                '"' => return Ok(s),
                '\\' => {
                    let esc = self.bump().ok_or_else(|| ConfError::at(open, "unterminated string"))?;
                    match esc {
                        't' => s.push('\t'),
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        '"' => s.push('"'),
                        '\\' => s.push('\\'),
                        'u' => s.push(self.hex_char(4)?),
                        'U' => s.push(self.hex_char(8)?),
                        'x' => s.push(self.hex_char(2)?),
                        other => return self.err(format!("invalid escape '\\{other}' in a string")),
                    }
                }
                c => s.push(c),
            }
        }
    }

    fn hex_char(&mut self, n: usize) -> Result<char, ConfError> {
        let digits = self.src.get(self.i..self.i + n).unwrap_or("");
        let c = u32::from_str_radix(digits, 16).ok().and_then(char::from_u32);
        match c {
            Some(c) if digits.len() == n => {
                self.i += n;
                Ok(c)
            }
            _ => self.err(format!("expected {n} hexadecimal digits in an escape")),
        }
    }

    /// Classify a bare word: boolean, variable, number (with size suffix) or string.
    fn bare(&mut self, word: &str, pos: Pos) -> Result<Node, ConfError> {
        let node = |value, raw| Node { value, pos: pos.clone(), raw };
        match word.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => return Ok(node(Value::Bool(true), None)),
            "false" | "no" | "off" => return Ok(node(Value::Bool(false), None)),
            _ => {}
        }
        // bcrypt hashes (`$2a$...`) are strings, as nats-server special-cases them.
        if let Some(name) = word.strip_prefix('$').filter(|_| !word.starts_with("$2a$")) {
            return self.variable(name, pos);
        }
        let unsigned = word.strip_prefix('-').unwrap_or(word);
        let digits = unsigned.find(|c: char| !c.is_ascii_digit()).unwrap_or(unsigned.len());
        if digits > 0 {
            let suffix = &unsigned[digits..];
            if let Some(mult) = size_multiplier(suffix) {
                let n: i64 = word[..word.len() - suffix.len()]
                    .parse()
                    .map_err(|_| ConfError::at(&pos, format!("integer '{word}' is out of range")))?;
                let v =
                    n.checked_mul(mult as i64).ok_or_else(|| ConfError::at(&pos, format!("'{word}' is too large")))?;
                let raw = (!suffix.is_empty()).then(|| word.to_owned());
                return Ok(node(Value::Int(v), raw));
            }
            if suffix.starts_with('.')
                && suffix[1..].bytes().all(|b| b.is_ascii_digit())
                && suffix.len() > 1
                && let Ok(f) = word.parse::<f64>()
            {
                return Ok(node(Value::Float(f), None));
            }
        }
        Ok(node(Value::Str(word.to_owned()), None))
    }

    /// `$name`: an enclosing map's key (innermost first), else the environment.
    fn variable(&mut self, name: &str, pos: Pos) -> Result<Node, ConfError> {
        for scope in self.scopes.iter_mut().rev() {
            if let Some(v) = scope.get(name).cloned() {
                if !scope.used_as_vars.iter().any(|k| k == name) {
                    scope.used_as_vars.push(name.to_owned());
                }
                return Ok(Node { pos, ..v });
            }
        }
        if self.expanding.iter().any(|n| n == name) {
            return Err(ConfError::at(&pos, format!("variable reference cycle for '{name}'")));
        }
        let Some(text) = (self.env)(name) else {
            return Err(ConfError::at(
                &pos,
                format!("variable '${name}' is not defined (in the file or the environment)"),
            ));
        };
        // The environment's text is read as a value would be in the file.
        let wrapped = format!("v={text}");
        let mut sub = Parser::new(&wrapped, &format!("${name}"), self.dir.clone(), self.env, self.depth);
        sub.expanding = self.expanding.clone();
        sub.expanding.push(name.to_owned());
        let mut map = sub.document().map_err(|e| ConfError::at(&pos, format!("in environment variable: {e}")))?;
        match map.entries.pop() {
            Some((_, _, v)) => Ok(Node { pos, ..v }),
            None => Err(ConfError::at(&pos, format!("environment variable '{name}' holds no value"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Map, ConfError> {
        parse_str(text, "t.conf", Path::new("."), &no_env)
    }

    fn get<'m>(m: &'m Map, path: &str) -> &'m Value {
        let mut cur = m;
        let mut parts = path.split('.').peekable();
        loop {
            let key = parts.next().unwrap();
            let v = &cur.get(key).unwrap_or_else(|| panic!("no {key} in {path}")).value;
            if parts.peek().is_none() {
                return v;
            }
            match v {
                Value::Map(inner) => cur = inner,
                other => panic!("{key} is {other:?}"),
            }
        }
    }

    #[test]
    fn a_file_that_is_one_json_style_map() {
        // The NATS Helm chart's nats.conf: JSON with quoted keys, `$VAR`s and size suffixes.
        let env = |k: &str| (k == "SERVER_NAME").then(|| "nats-0".to_owned());
        let text = "{\n  \"http_port\": 8222,\n  \"port\": 4222,\n  \"server_name\": $SERVER_NAME,\n  \
                    \"cluster\": {\"name\": \"nats\", \"no_advertise\": true, \"routes\": [\"nats://a:6222\", \
                    \"nats://b:6222\"]},\n  \"jetstream\": {\"max_file_store\": 10Gi}\n}\n";
        let m = parse_str(text, "t.conf", Path::new("."), &env).unwrap();
        assert_eq!(get(&m, "port"), &Value::Int(4222));
        assert_eq!(get(&m, "server_name"), &Value::Str("nats-0".into()));
        assert_eq!(get(&m, "cluster.no_advertise"), &Value::Bool(true));
        assert_eq!(get(&m, "jetstream.max_file_store"), &Value::Int(10 << 30));
        let e = parse("{ port: 1 }\nhost: x\n").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (2, 1), "{e}");
        assert!(parse("{ port: 1\n").unwrap_err().msg.contains("has no '}'"));
    }

    #[test]
    fn three_separators_comments_and_scalars() {
        let m = parse(
            "# top\nport: 4222\nhost = \"0.0.0.0\" // trailing\nserver_name weir-1\ndebug: true\nlogtime off\n\
             ratio: 0.5; max_payload: 8MB\nneg: -1\nw: '2s'\n",
        )
        .unwrap();
        assert_eq!(get(&m, "port"), &Value::Int(4222));
        assert_eq!(get(&m, "host"), &Value::Str("0.0.0.0".into()));
        assert_eq!(get(&m, "server_name"), &Value::Str("weir-1".into()));
        assert_eq!(get(&m, "debug"), &Value::Bool(true));
        assert_eq!(get(&m, "logtime"), &Value::Bool(false));
        assert_eq!(get(&m, "ratio"), &Value::Float(0.5));
        assert_eq!(get(&m, "max_payload"), &Value::Int(8 << 20));
        assert_eq!(m.get("max_payload").unwrap().raw.as_deref(), Some("8MB"));
        assert_eq!(get(&m, "neg"), &Value::Int(-1));
        assert_eq!(get(&m, "w"), &Value::Str("2s".into()));
    }

    #[test]
    fn nested_maps_arrays_and_bare_strings() {
        let m = parse(
            "cluster {\n  name: east\n  listen: 127.0.0.1:6222\n  routes [\n    nats-route://a:1 # one\n    \"nats-route://b:2\", nats-route://c:3\n  ]\n}\n\
             authorization: { user: bob, password: \"p w\" }\njetstream { store_dir: '/tmp/js' }\n",
        )
        .unwrap();
        assert_eq!(get(&m, "cluster.name"), &Value::Str("east".into()));
        assert_eq!(get(&m, "cluster.listen"), &Value::Str("127.0.0.1:6222".into()));
        let Value::Array(routes) = get(&m, "cluster.routes") else { panic!() };
        let routes: Vec<_> = routes.iter().map(|n| n.value.clone()).collect();
        assert_eq!(
            routes,
            ["nats-route://a:1", "nats-route://b:2", "nats-route://c:3"].map(|s| Value::Str(s.into())).to_vec()
        );
        assert_eq!(get(&m, "authorization.user"), &Value::Str("bob".into()));
        assert_eq!(get(&m, "authorization.password"), &Value::Str("p w".into()));
        assert_eq!(get(&m, "jetstream.store_dir"), &Value::Str("/tmp/js".into()));
    }

    #[test]
    fn escapes_in_double_quotes_only() {
        let m = parse("a: \"t\\tn\\\"q\\u00e9\"\nb: 'raw\\t'\n").unwrap();
        assert_eq!(get(&m, "a"), &Value::Str("t\tn\"qé".into()));
        assert_eq!(get(&m, "b"), &Value::Str("raw\\t".into()));
    }

    #[test]
    fn variables_from_the_file_then_the_environment() {
        let env = |k: &str| match k {
            "PORT" => Some("4333".to_owned()),
            "LOOP" => Some("$LOOP".to_owned()),
            _ => None,
        };
        let m = parse_str("NAME: weir-7\nserver_name: $NAME\nport: $PORT\nc { n: $NAME }\n", "t", Path::new("."), &env)
            .unwrap();
        assert_eq!(get(&m, "server_name"), &Value::Str("weir-7".into()));
        assert_eq!(get(&m, "port"), &Value::Int(4333));
        assert_eq!(get(&m, "c.n"), &Value::Str("weir-7".into()));
        assert_eq!(m.used_as_vars, vec!["NAME".to_owned()]);
        let e = parse("port: $NOPE\n").unwrap_err();
        assert_eq!(e.to_string(), "t.conf:1:7: variable '$NOPE' is not defined (in the file or the environment)");
        let e = parse_str("p: $LOOP\n", "t", Path::new("."), &env).unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let cases = [
            ("a: \"open\n", "t.conf:1:4: unterminated string"),
            ("a {\n b: 1\n", "t.conf:3:1: unexpected end of file: the map opened at t.conf:1:3 has no '}'"),
            ("a: [1, 2\n", "t.conf:1:4: unexpected end of file: this array has no ']'"),
            ("\n\nport:\n", "t.conf:3:6: expected a value for 'port'"),
            ("a: 1 2\n", "t.conf:1:6: expected a new line, ';' or ',' after 'a', found '2'"),
            ("}\n", "t.conf:1:1: unexpected '}'"),
            ("a: \"\\q\"\n", "t.conf:1:7: invalid escape '\\q' in a string"),
            ("a: 99999999999999999999\n", "t.conf:1:4: integer '99999999999999999999' is out of range"),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn include_is_relative_to_the_including_file() {
        let dir = std::env::temp_dir().join(format!("weir-conf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("main.conf"), "port: 1\ninclude sub/auth.conf\nhost: h\n").unwrap();
        std::fs::write(dir.join("sub/auth.conf"), "authorization { token: s3cret }\ninclude 'more.conf'\n").unwrap();
        std::fs::write(dir.join("sub/more.conf"), "port: 2\n").unwrap();
        std::fs::write(dir.join("self.conf"), "include self.conf\n").unwrap();
        let m = parse_file(&dir.join("main.conf")).unwrap();
        assert_eq!(get(&m, "authorization.token"), &Value::Str("s3cret".into()));
        assert_eq!(get(&m, "port"), &Value::Int(2));
        assert_eq!(get(&m, "host"), &Value::Str("h".into()));
        let e = parse_file(&dir.join("self.conf")).unwrap_err().to_string();
        assert!(e.contains("nest deeper"), "{e}");
        let e = parse_str("include nope.conf\n", "t", &dir, &no_env).unwrap_err().to_string();
        assert!(e.starts_with("t:1:1: error in included file 'nope.conf'") && e.contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
