//! [`Auth`]: how clients must authenticate (nothing, a token, one user and password, or
//! a list of users with passwords or NKEYs, each in a NATS account with optional
//! permissions), checked against each CONNECT as nats-server does.
//!
//! A successful check yields an [`Identity`]: the account the connection lives in (its
//! isolated subject space, see [`super::broker`]) and the user's [`Permissions`].

use crate::proto::ConnectInfo;
use crate::subject;
use std::sync::Arc;

/// `-ERR` text for wrong or missing credentials, or any op but CONNECT first (the connection closes).
pub const ERR_AUTH_VIOLATION: &str = "Authorization Violation";
/// `-ERR` text when no CONNECT arrives within the auth timeout (the connection closes).
pub const ERR_AUTH_TIMEOUT: &str = "Authentication Timeout";
/// The default account: every user not placed in an account lives here (nats-server's `$G`).
pub const GLOBAL_ACCOUNT: &str = "$G";

/// Allowed and denied subjects of one direction (publish or subscribe), as nats-server's
/// `SubjectPermission`. `allow: None` allows every subject; `Some(vec![])` allows none
/// (nats-server makes `allow_responses` without a publish allow list mean that).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectPerm {
    /// Patterns a subject must match one of (`None`: any subject).
    pub allow: Option<Vec<String>>,
    /// Patterns no subject may match.
    pub deny: Vec<String>,
}

impl SubjectPerm {
    /// Whether `subject` is allowed. A subject's wildcard tokens are matched as literal
    /// tokens, as nats-server's sublist match does for a SUB: allow `foo.>` admits
    /// `SUB foo.*`, allow `foo.bar` does not.
    pub fn allows(&self, subject: &str) -> bool {
        let allowed = self.allow.as_ref().is_none_or(|a| a.iter().any(|p| subject::matches(p, subject)));
        allowed && !self.denies(subject)
    }

    /// Whether a deny pattern matches `subject`.
    pub fn denies(&self, subject: &str) -> bool {
        self.deny.iter().any(|p| subject::matches(p, subject))
    }
}

/// `allow_responses`: the user may publish to the reply subject of each request it
/// received, at most `max_msgs` times (nats-server's `ResponsePermission`, default 1).
/// nats-server also honours `expires`; weir has no wall clock in the broker and keeps
/// each reply allowed until used (or pushed out of the bounded table, see the broker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponsePerm {
    /// Responses allowed per received request.
    pub max_msgs: u32,
}

impl Default for ResponsePerm {
    fn default() -> Self {
        ResponsePerm { max_msgs: 1 }
    }
}

/// A user's permissions (nats-server's `permissions { publish, subscribe, allow_responses }`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Publish permissions (`None`: publish anywhere).
    pub publish: Option<SubjectPerm>,
    /// Subscribe permissions (`None`: subscribe anywhere).
    pub subscribe: Option<SubjectPerm>,
    /// Replies to received requests are allowed.
    pub allow_responses: Option<ResponsePerm>,
}

impl Permissions {
    /// Apply nats-server's rule: with `allow_responses` and no publish allow list, the
    /// user may publish nothing but responses.
    pub fn normalized(mut self) -> Permissions {
        if self.allow_responses.is_some() {
            let p = self.publish.get_or_insert_with(SubjectPerm::default);
            p.allow.get_or_insert_with(Vec::new);
        }
        self
    }

    /// Whether publishing to `subject` is allowed by the lists (responses aside).
    pub fn can_publish(&self, subject: &str) -> bool {
        self.publish.as_ref().is_none_or(|p| p.allows(subject))
    }

    /// Whether `SUB subject` is allowed. The queue name is not part of the check (weir
    /// does not implement nats-server's `subject queue` permission form).
    pub fn can_subscribe(&self, subject: &str) -> bool {
        self.subscribe.as_ref().is_none_or(|p| p.allows(subject))
    }

    /// Whether a message on `subject` must not be delivered to this user: a wildcard
    /// subscription is allowed even when a deny pattern covers part of it, and the
    /// denied subjects are then filtered at delivery (as nats-server's `checkDenySub`).
    pub fn denies_delivery(&self, subject: &str) -> bool {
        self.subscribe.as_ref().is_some_and(|p| p.denies(subject))
    }
}

/// How a configured user proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// CONNECT's `user` and `pass`.
    Password {
        /// User name.
        user: String,
        /// Password.
        pass: String,
    },
    /// CONNECT's `nkey` (a public user key, `U...`) and `sig`, its signature of INFO's `nonce`.
    Nkey(String),
}

/// One configured user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// How it authenticates.
    pub cred: Credential,
    /// The account it lives in ([`GLOBAL_ACCOUNT`] for `authorization { users }`).
    pub account: String,
    /// Its permissions (`None`: everything allowed).
    pub permissions: Option<Arc<Permissions>>,
}

impl User {
    /// A user with a password in `account`, without permissions.
    pub fn password(user: &str, pass: &str, account: &str) -> User {
        User {
            cred: Credential::Password { user: user.to_owned(), pass: pass.to_owned() },
            account: account.to_owned(),
            permissions: None,
        }
    }

    /// The user's name as nats-server shows it (the user name, or the public nkey).
    pub fn name(&self) -> &str {
        match &self.cred {
            Credential::Password { user, .. } => user,
            Credential::Nkey(k) => k,
        }
    }

    fn identity(&self) -> Identity {
        Identity { account: self.account.clone(), permissions: self.permissions.clone(), user: self.name().to_owned() }
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        write!(
            f,
            "User {{ name: {:?}, account: {:?}, permissions: {:?} }}",
            self.name(),
            self.account,
            self.permissions
        )
    }
}

/// The users of a server with several (nats-server's `authorization { users }` and the
/// `users` of each `accounts` entry), and `no_auth_user`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Users {
    /// Every user, across accounts.
    pub users: Vec<User>,
    /// The user (by name) a client without credentials becomes (nats-server's `no_auth_user`).
    pub no_auth_user: Option<String>,
}

/// Who a connection is, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Its account.
    pub account: String,
    /// Its permissions (`None`: everything allowed).
    pub permissions: Option<Arc<Permissions>>,
    /// The user it authenticated as: the user name, NKEY or JWT subject (empty without
    /// users, or with a token), for `/connz` `authorized_user`.
    pub user: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity { account: GLOBAL_ACCOUNT.to_owned(), permissions: None, user: String::new() }
    }
}

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
    /// CONNECT must name one of these users (password or NKEY), unless `no_auth_user` is set.
    Users(Arc<Users>),
    /// Operator mode: CONNECT must carry a user JWT of a trusted account and its nonce
    /// signature (see [`super::jwt`]).
    Operator(Arc<super::jwt::Trust>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::User { user, .. } => write!(f, "User {{ user: {user:?}, pass: <redacted> }}"),
            Auth::Users(u) => {
                let names: Vec<&str> = u.users.iter().map(User::name).collect();
                write!(f, "Users {{ users: {names:?}, no_auth_user: {:?} }}", u.no_auth_user)
            }
            Auth::Operator(t) => write!(f, "Operator {{ operator: {:?}, accounts: {} }}", t.operator, t.accounts.len()),
        }
    }
}

impl Auth {
    /// Whether clients must authenticate (INFO's `auth_required`; as nats-server, not
    /// announced when a `no_auth_user` covers clients without credentials).
    pub fn is_required(&self) -> bool {
        match self {
            Auth::None => false,
            Auth::Users(u) => u.no_auth_user.is_none(),
            _ => true,
        }
    }

    /// Whether the first op must be a CONNECT: only when auth is required (not without
    /// auth, nor with a `no_auth_user`, as nats-server, whose `expectConnect` is off then).
    pub fn connect_first(&self) -> bool {
        self.is_required()
    }

    /// Whether INFO must carry a `nonce` for the client to sign (some user has an NKEY).
    pub fn needs_nonce(&self) -> bool {
        match self {
            Auth::Users(u) => u.users.iter().any(|u| matches!(u.cred, Credential::Nkey(_))),
            Auth::Operator(_) => true,
            _ => false,
        }
    }

    /// The identity of a connection before (or without) CONNECT credentials: the
    /// `no_auth_user`'s, else the default account's.
    pub fn default_identity(&self) -> Identity {
        if let Auth::Users(u) = self
            && let Some(name) = &u.no_auth_user
            && let Some(user) = u.users.iter().find(|x| x.name() == name)
        {
            return user.identity();
        }
        Identity::default()
    }

    /// Whether `info`'s credentials are accepted (for `Users` with NKEYs, `nonce` is what
    /// INFO sent): the connection's identity, or `None`.
    pub fn check(&self, info: &ConnectInfo, nonce: &str) -> Option<Identity> {
        match self {
            Auth::None => Some(Identity::default()),
            Auth::Token(token) => {
                info.auth_token.as_deref().is_some_and(|t| secret_matches(t, token)).then(Identity::default)
            }
            Auth::User { user, pass } => (info.user.as_deref() == Some(user.as_str())
                && info.pass.as_deref().is_some_and(|p| secret_matches(p, pass)))
            .then(|| Identity { user: user.clone(), ..Identity::default() }),
            Auth::Users(u) => check_users(u, info, nonce),
            Auth::Operator(t) => {
                let (jwt, sig) = (info.jwt.as_deref()?, info.sig.as_deref()?);
                t.check(jwt, sig, nonce).map_err(|e| tracing::debug!("JWT refused: {e}")).ok()
            }
        }
    }
}

fn check_users(u: &Users, info: &ConnectInfo, nonce: &str) -> Option<Identity> {
    if let Some(nkey) = &info.nkey {
        let user = u.users.iter().find(|x| matches!(&x.cred, Credential::Nkey(k) if k == nkey))?;
        return verify_nkey(nkey, info.sig.as_deref()?, nonce).then(|| user.identity());
    }
    if let Some(name) = &info.user {
        let user = u.users.iter().find(|x| matches!(&x.cred, Credential::Password { user, .. } if user == name))?;
        let Credential::Password { pass, .. } = &user.cred else { return None };
        return info.pass.as_deref().is_some_and(|p| secret_matches(p, pass)).then(|| user.identity());
    }
    // No credentials at all: the no_auth_user, if any (nats-server refuses a token here).
    if info.auth_token.is_none() && info.jwt.is_none() && u.no_auth_user.is_some() {
        let name = u.no_auth_user.as_deref()?;
        return u.users.iter().find(|x| x.name() == name).map(User::identity);
    }
    None
}

/// Whether `sig` (base64url, with or without padding, as clients send it; nats-server
/// also accepts standard base64) is `nkey`'s ed25519 signature of `nonce`'s bytes.
/// `nkey` must be a valid public user key.
pub fn verify_nkey(nkey: &str, sig: &str, nonce: &str) -> bool {
    if !nkey.starts_with('U') {
        return false;
    }
    let Ok(kp) = nkeys::KeyPair::from_public_key(nkey) else { return false };
    let Some(sig) = decode_sig(sig) else { return false };
    kp.verify(nonce.as_bytes(), &sig).is_ok()
}

/// The 32 raw bytes of a public nkey, if `key` is one (any type; checks the CRC).
pub fn decode_nkey(key: &str) -> Option<[u8; 32]> {
    nkeys::from_public_key(key).ok().map(|(_, raw)| raw)
}

/// Decode a base64 signature in any of the forms clients use.
pub fn decode_sig(sig: &str) -> Option<Vec<u8>> {
    use data_encoding::{BASE64, BASE64URL, BASE64URL_NOPAD};
    let b = sig.trim().as_bytes();
    BASE64URL_NOPAD.decode(b).or_else(|_| BASE64URL.decode(b)).or_else(|_| BASE64.decode(b)).ok()
}

/// Whether `secret` (a configured password or token) is a bcrypt hash, as nats-server's
/// `isBcrypt` decides: `$2a$`, `$2b$`, `$2x$` or `$2y$`, two cost digits, `$`.
pub fn is_bcrypt(secret: &str) -> bool {
    let b = secret.as_bytes();
    b.len() > 7
        && b.starts_with(b"$2")
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

/// Whether the client's `given` secret matches the configured `secret`: verified against
/// it when it is a bcrypt hash (what `nats server passwd` makes; nats-server accepts
/// those for passwords and tokens), else compared in constant time. A client that sends
/// the hash itself is refused, as by nats-server.
pub fn secret_matches(given: &str, secret: &str) -> bool {
    if is_bcrypt(secret) {
        return bcrypt::verify(given, secret).unwrap_or(false);
    }
    same(given, secret)
}

/// Compare secrets in time that depends only on their lengths.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Quote `s` as Go's `%q` does for the subjects in nats-server's permission errors
/// (`"foo"`; quotes and backslashes escaped, control characters as `\xNN`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// nats-server's `-ERR` text for a refused publish: `Permissions Violation for Publish to "foo"`.
pub fn pub_violation(subject: &str) -> String {
    format!("Permissions Violation for Publish to {}", go_quote(subject))
}

/// nats-server's `-ERR` text for a refused SUB: `Permissions Violation for Subscription
/// to "foo"`, with ` using queue "q"` for a queue subscription.
pub fn sub_violation(subject: &str, queue: Option<&str>) -> String {
    match queue {
        Some(q) => {
            format!("Permissions Violation for Subscription to {} using queue {}", go_quote(subject), go_quote(q))
        }
        None => format!("Permissions Violation for Subscription to {}", go_quote(subject)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(json: &str) -> ConnectInfo {
        ConnectInfo::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn bcrypt_hashed_passwords_and_tokens_are_verified() {
        // `$2a$04$` + salt + hash of "s3cret" (cost 4 keeps the debug build quick).
        const HASH: &str = "$2a$04$b0TnagzxWUvyJRC0WljyXOf/z.BITC1BKM07rs//10dSHCEjoRaMi";
        assert!(is_bcrypt(HASH) && !is_bcrypt("$2a$x") && !is_bcrypt("plain") && !is_bcrypt("$2c$04$abc"));
        assert!(secret_matches("s3cret", HASH));
        assert!(!secret_matches("s3cret!", HASH));
        assert!(!secret_matches(HASH, HASH), "the hash itself is not the password");
        let users =
            Auth::Users(Arc::new(Users { users: vec![User::password("a", HASH, GLOBAL_ACCOUNT)], no_auth_user: None }));
        assert!(users.check(&connect(r#"{"user":"a","pass":"s3cret"}"#), "").is_some());
        assert!(users.check(&connect(r#"{"user":"a","pass":"wrong"}"#), "").is_none());
        let one = Auth::User { user: "a".into(), pass: HASH.into() };
        assert!(one.check(&connect(r#"{"user":"a","pass":"s3cret"}"#), "").is_some());
        let token = Auth::Token(HASH.into());
        assert!(token.check(&connect(r#"{"auth_token":"s3cret"}"#), "").is_some());
        assert!(token.check(&connect(&format!(r#"{{"auth_token":"{HASH}"}}"#)), "").is_none());
    }

    #[test]
    fn checks_tokens_and_users() {
        let token = Auth::Token("s3cret".into());
        assert!(token.check(&connect(r#"{"auth_token":"s3cret"}"#), "").is_some());
        assert!(token.check(&connect(r#"{"auth_token":"s3cre"}"#), "").is_none());
        assert!(token.check(&connect(r#"{"user":"x","pass":"s3cret"}"#), "").is_none());
        assert!(token.check(&connect("{}"), "").is_none());
        let user = Auth::User { user: "bob".into(), pass: "pw".into() };
        assert!(user.check(&connect(r#"{"user":"bob","pass":"pw"}"#), "").is_some());
        assert!(user.check(&connect(r#"{"user":"bob","pass":"pW"}"#), "").is_none());
        assert!(user.check(&connect(r#"{"user":"eve","pass":"pw"}"#), "").is_none());
        assert!(user.check(&connect(r#"{"auth_token":"pw"}"#), "").is_none());
        assert!(Auth::None.check(&connect("{}"), "").is_some() && !Auth::None.is_required() && user.is_required());
        assert!(!format!("{user:?}{token:?}").contains("pw") && !format!("{token:?}").contains("s3cret"));
    }

    fn users() -> Auth {
        let mut a = User::password("a", "pa", "A");
        a.permissions = Some(Arc::new(Permissions {
            publish: Some(SubjectPerm { allow: Some(vec!["foo.>".into()]), deny: vec!["foo.secret".into()] }),
            ..Permissions::default()
        }));
        Auth::Users(Arc::new(Users {
            users: vec![a, User::password("b", "pb", "B"), User::password("g", "pg", GLOBAL_ACCOUNT)],
            no_auth_user: Some("b".into()),
        }))
    }

    #[test]
    fn users_land_in_their_accounts_and_no_auth_user_covers_empty_connects() {
        let auth = users();
        let a = auth.check(&connect(r#"{"user":"a","pass":"pa"}"#), "").unwrap();
        assert_eq!(a.account, "A");
        let p = a.permissions.unwrap();
        assert!(p.can_publish("foo.bar") && !p.can_publish("foo.secret") && !p.can_publish("bar"));
        assert!(p.can_subscribe("anything"));
        assert!(auth.check(&connect(r#"{"user":"a","pass":"pb"}"#), "").is_none());
        assert_eq!(auth.check(&connect("{}"), "").unwrap().account, "B");
        assert_eq!(auth.default_identity().account, "B");
        assert!(!auth.connect_first(), "no_auth_user lets ops come before CONNECT");
        // A wrong user is refused even with a no_auth_user; so is a token.
        assert!(auth.check(&connect(r#"{"user":"x","pass":"pa"}"#), "").is_none());
        assert!(auth.check(&connect(r#"{"auth_token":"pa"}"#), "").is_none());
        assert_eq!(auth.check(&connect(r#"{"user":"g","pass":"pg"}"#), "").unwrap().account, GLOBAL_ACCOUNT);
    }

    #[test]
    fn permission_matching_follows_nats_server() {
        let sub = SubjectPerm { allow: Some(vec!["foo.>".into(), "bar".into()]), deny: vec!["foo.secret".into()] };
        assert!(sub.allows("foo.a") && sub.allows("foo.*") && sub.allows("foo.>") && sub.allows("bar"));
        assert!(!sub.allows("foo") && !sub.allows("bar.x") && !sub.allows(">") && !sub.allows("foo.secret"));
        // allow foo.bar does not admit SUB foo.* (its `*` is a literal token to the allow list).
        let narrow = SubjectPerm { allow: Some(vec!["foo.bar".into()]), deny: vec![] };
        assert!(!narrow.allows("foo.*") && narrow.allows("foo.bar"));
        // Deny with a wildcard: SUB foo.* is allowed but foo.secret is filtered at delivery.
        let p = Permissions { subscribe: Some(sub), ..Permissions::default() };
        assert!(p.can_subscribe("foo.*") && p.denies_delivery("foo.secret") && !p.denies_delivery("foo.a"));
        // An empty allow list allows nothing; allow_responses alone makes publish deny-all.
        assert!(!SubjectPerm { allow: Some(vec![]), deny: vec![] }.allows("x"));
        let r = Permissions { allow_responses: Some(ResponsePerm::default()), ..Permissions::default() }.normalized();
        assert!(!r.can_publish("x") && r.can_subscribe("x"));
        let open = Permissions::default().normalized();
        assert!(open.can_publish("x") && open.can_subscribe(">"));
    }

    #[test]
    fn error_texts_quote_as_go() {
        assert_eq!(pub_violation("foo"), r#"Permissions Violation for Publish to "foo""#);
        assert_eq!(sub_violation("foo.*", None), r#"Permissions Violation for Subscription to "foo.*""#);
        assert_eq!(
            sub_violation("foo", Some("q")),
            r#"Permissions Violation for Subscription to "foo" using queue "q""#
        );
        assert_eq!(go_quote("a\"b\\c\u{1}"), r#""a\"b\\c\x01""#);
    }

    #[test]
    fn nkey_signatures_are_checked_against_the_nonce() {
        let kp = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [7u8; 32]).unwrap();
        let public = kp.public_key();
        let nonce = "nonce-1";
        let sig = data_encoding::BASE64URL_NOPAD.encode(&kp.sign(nonce.as_bytes()).unwrap());
        assert!(verify_nkey(&public, &sig, nonce));
        assert!(!verify_nkey(&public, &sig, "nonce-2"), "a signature of another nonce");
        let other = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [8u8; 32]).unwrap();
        assert!(!verify_nkey(&other.public_key(), &sig, nonce), "another key's signature");
        assert!(!verify_nkey(&public, "not base64!", nonce));
        let auth = Auth::Users(Arc::new(Users {
            users: vec![User { cred: Credential::Nkey(public.clone()), account: "A".into(), permissions: None }],
            no_auth_user: None,
        }));
        assert!(auth.needs_nonce());
        let ok = format!(r#"{{"nkey":"{public}","sig":"{sig}"}}"#);
        assert_eq!(auth.check(&connect(&ok), nonce).unwrap().account, "A");
        assert!(auth.check(&connect(&ok), "other").is_none());
        let unknown = format!(r#"{{"nkey":"{}","sig":"{sig}"}}"#, other.public_key());
        assert!(auth.check(&connect(&unknown), nonce).is_none());
        assert!(auth.check(&connect(&format!(r#"{{"nkey":"{public}"}}"#)), nonce).is_none());
    }
}
