//! Configuration reload (nats-server's SIGHUP, `--signal reload`): which settings may
//! change while the server runs, and applying a new configuration.
//!
//! As nats-server's `Reload`: the new configuration is compared with the running one
//! field by field; if any setting that cannot change at runtime differs, the whole
//! reload is refused with `config reload not supported for <option>: old=..., new=...`
//! and the running configuration is kept. Otherwise the new one replaces it.
//!
//! | may change | applies to |
//! |---|---|
//! | `max_payload`, `max_control_line`, `max_pending`, `ping_interval`, `ping_max`, `write_deadline`, `auth_timeout`, `max_subscriptions` | connections made after the reload |
//! | the authorization (users, permissions, token, `no_auth_user`) | new connections, and every connected one checks its CONNECT again (as nats-server): refused credentials or a user moved to another account close it, new permissions apply at once |
//! | `max_connections` | the next connection admitted |
//! | `lame_duck_duration`, `lame_duck_grace_period` | the next lame-duck mode |
//! | `accounts` (new ones), `account_max_outbound`, `account_max_subs_memory` | at once: new accounts are added, every account's limits set (accounts are never removed) |
//! | `nats_version` | the INFO of later connections |
//! | `tls` while it stays on (files, `verify`, timeouts, `handshake_first`); the certificate, key and CA files are read again on every reload even when the settings are the same, so a rotated certificate (cert-manager, say) is served after a SIGHUP, as with nats-server | connections made after the reload |
//!
//! Refused: `host`, `port`, `server_name`, `cluster` (listen address, name, routes,
//! route TLS, `no_advertise`), `client_advertise`, `tls` on or off, `jetstream` (on/off and the
//! store directory), `max_outbound_total`. The seed is not compared (it is drawn anew
//! by whoever builds the configuration).

use super::config::NatsConfig;
use super::server::Shared;
use std::sync::Arc;

/// Reloads the configuration of a running server (see the module doc).
#[derive(Clone)]
pub struct Reloader(pub(super) Arc<Shared>);

impl Reloader {
    /// Replace the running configuration with `new`, or refuse it naming the first
    /// setting that cannot change at runtime. Returns the names of the settings that changed.
    ///
    /// With TLS on, its files are read again first (even when unchanged: a rotated
    /// certificate); a file that does not load refuses the whole reload with its error.
    pub fn reload(&self, new: NatsConfig) -> Result<Vec<&'static str>, String> {
        let old = self.0.cfg();
        let mut changed = diff(&old, &new)?;
        let tls = match &new.tls {
            Some(t) => Some(crate::server::tls::ServerTls::load(t).map_err(|e| format!("tls: {e}"))?),
            None => None,
        };
        self.0.replace_cfg(new);
        if changed.contains(&"authorization") {
            self.0.auth_epoch.send_modify(|e| *e += 1);
        }
        if let Some(t) = tls {
            self.0.set_client_tls(t);
            if !changed.contains(&"tls") {
                changed.push("tls");
            }
        }
        Ok(changed)
    }
}

/// The reloadable settings that differ between `old` and `new`, or nats-server's error
/// naming the first setting that differs and cannot change at runtime.
pub fn diff(old: &NatsConfig, new: &NatsConfig) -> Result<Vec<&'static str>, String> {
    fn refuse(name: &str, old: impl std::fmt::Debug, new: impl std::fmt::Debug) -> String {
        format!("config reload not supported for {name}: old={old:?}, new={new:?}")
    }
    if old.listen.ip() != new.listen.ip() {
        return Err(refuse("host", old.listen.ip(), new.listen.ip()));
    }
    // A random port (0) is whatever was bound; the same request again is no change.
    if old.listen.port() != new.listen.port() && new.listen.port() != 0 {
        return Err(refuse("port", old.listen.port(), new.listen.port()));
    }
    if old.server_name != new.server_name {
        return Err(refuse("server_name", &old.server_name, &new.server_name));
    }
    let cluster = |c: &NatsConfig| c.cluster.as_ref().map(|c| format!("{c:?}"));
    if cluster(old) != cluster(new) {
        return Err(refuse("cluster", cluster(old), cluster(new)));
    }
    if old.client_advertise != new.client_advertise {
        return Err(refuse("client_advertise", &old.client_advertise, &new.client_advertise));
    }
    if old.tls.is_some() != new.tls.is_some() {
        return Err(refuse("tls", old.tls.is_some(), new.tls.is_some()));
    }
    let js = |c: &NatsConfig| c.jetstream.as_ref().map(|j| j.shown_dir.clone());
    if js(old) != js(new) {
        return Err(refuse("jetstream", js(old), js(new)));
    }
    if old.max_outbound_total != new.max_outbound_total {
        return Err(refuse("max_outbound_total", old.max_outbound_total, new.max_outbound_total));
    }
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("max_payload", old.max_payload != new.max_payload);
    check("max_control_line", old.max_control_line != new.max_control_line);
    check("max_pending", old.max_pending != new.max_pending);
    check("ping_interval", old.ping_interval != new.ping_interval);
    check("ping_max", old.ping_max != new.ping_max);
    check("write_deadline", old.write_deadline != new.write_deadline);
    check("authorization", old.auth != new.auth);
    check("auth_timeout", old.auth_timeout != new.auth_timeout);
    check("max_connections", old.max_connections != new.max_connections);
    check("max_subscriptions", old.max_subscriptions != new.max_subscriptions);
    check("accounts", old.account_names() != new.account_names());
    check("account limits", old.account_limits() != new.account_limits());
    check("lame_duck_duration", old.lame_duck_duration != new.lame_duck_duration);
    check("lame_duck_grace_period", old.lame_duck_grace_period != new.lame_duck_grace_period);
    check("nats_version", old.nats_version != new.nats_version);
    let tls = |c: &NatsConfig| c.tls.as_ref().map(|t| format!("{t:?}"));
    check("tls", tls(old) != tls(new));
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn what_may_change_and_what_is_refused() {
        let old = NatsConfig { listen: "127.0.0.1:4222".parse().unwrap(), ..NatsConfig::default() };
        let same = NatsConfig { seed: 99, ..old.clone() };
        assert_eq!(diff(&old, &same), Ok(vec![]), "the seed is not compared");
        let new = NatsConfig {
            max_payload: 1024,
            ping_interval: Duration::from_millis(100),
            max_connections: 3,
            accounts: vec!["A".into()],
            ..old.clone()
        };
        assert_eq!(
            diff(&old, &new),
            Ok(vec!["max_payload", "ping_interval", "max_connections", "accounts", "account limits"])
        );
        let port = NatsConfig { listen: "127.0.0.1:4333".parse().unwrap(), max_payload: 1, ..old.clone() };
        assert_eq!(diff(&old, &port).unwrap_err(), "config reload not supported for port: old=4222, new=4333");
        let random = NatsConfig { listen: "127.0.0.1:0".parse().unwrap(), ..old.clone() };
        assert_eq!(diff(&old, &random), Ok(vec![]), "-p -1 again is no change");
        let name = NatsConfig { server_name: "x".into(), ..old.clone() };
        assert!(diff(&old, &name).unwrap_err().starts_with("config reload not supported for server_name:"));
        let cluster = NatsConfig { cluster: Some(Default::default()), ..old.clone() };
        assert!(diff(&old, &cluster).unwrap_err().starts_with("config reload not supported for cluster:"));
        // TLS may change while it stays on (certificate rotation); not on or off.
        let tls = |cert: &str| crate::server::tls::TlsConfig { cert_file: cert.into(), ..Default::default() };
        let with = NatsConfig { tls: Some(tls("a.pem")), ..old.clone() };
        assert_eq!(diff(&with, &NatsConfig { tls: Some(tls("b.pem")), ..old.clone() }), Ok(vec!["tls"]));
        assert_eq!(diff(&with, &with), Ok(vec![]));
        assert_eq!(diff(&with, &old).unwrap_err(), "config reload not supported for tls: old=true, new=false");
        assert!(diff(&old, &with).is_err());
    }
}
