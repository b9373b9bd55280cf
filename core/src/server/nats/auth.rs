//! [`Auth`]: how clients must authenticate (nothing, a token, or one user and
//! password), checked against each CONNECT as nats-server does.

use crate::proto::ConnectInfo;

/// `-ERR` text for wrong or missing credentials, or any op but CONNECT first (the connection closes).
pub const ERR_AUTH_VIOLATION: &str = "Authorization Violation";
/// `-ERR` text when no CONNECT arrives within the auth timeout (the connection closes).
pub const ERR_AUTH_TIMEOUT: &str = "Authentication Timeout";

/// Required client credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may connect.
    #[default]
    None,
    /// CONNECT must carry this `auth_token`.
    Token(String),
    /// CONNECT must carry this `user` and `pass`.
    User {
        /// User name.
        user: String,
        /// Password.
        pass: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::User { user, .. } => write!(f, "User {{ user: {user:?}, pass: <redacted> }}"),
        }
    }
}

impl Auth {
    /// Whether clients must authenticate (INFO's `auth_required`).
    pub fn is_required(&self) -> bool {
        *self != Auth::None
    }

    /// Whether `info`'s credentials are accepted.
    pub fn check(&self, info: &ConnectInfo) -> bool {
        match self {
            Auth::None => true,
            Auth::Token(token) => info.auth_token.as_deref().is_some_and(|t| same(t, token)),
            Auth::User { user, pass } => {
                info.user.as_deref() == Some(user.as_str()) && info.pass.as_deref().is_some_and(|p| same(p, pass))
            }
        }
    }
}

/// Compare secrets in time that depends only on their lengths.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(json: &str) -> ConnectInfo {
        ConnectInfo::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn checks_tokens_and_users() {
        let token = Auth::Token("s3cret".into());
        assert!(token.check(&connect(r#"{"auth_token":"s3cret"}"#)));
        assert!(!token.check(&connect(r#"{"auth_token":"s3cre"}"#)));
        assert!(!token.check(&connect(r#"{"user":"x","pass":"s3cret"}"#)));
        assert!(!token.check(&connect("{}")));
        let user = Auth::User { user: "bob".into(), pass: "pw".into() };
        assert!(user.check(&connect(r#"{"user":"bob","pass":"pw"}"#)));
        assert!(!user.check(&connect(r#"{"user":"bob","pass":"pW"}"#)));
        assert!(!user.check(&connect(r#"{"user":"eve","pass":"pw"}"#)));
        assert!(!user.check(&connect(r#"{"auth_token":"pw"}"#)));
        assert!(Auth::None.check(&connect("{}")) && !Auth::None.is_required() && user.is_required());
        assert!(!format!("{user:?}{token:?}").contains("pw") && !format!("{token:?}").contains("s3cret"));
    }
}
