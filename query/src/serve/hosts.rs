//! The `Host` names a server answers (`--allow-host`), part of its options; the guard checks
//! every request against them.

use std::net::IpAddr;

/// The `Host` values a server answers.
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    bind: IpAddr,
    /// Lower-cased names from `--allow-host`; one that starts with `.` admits its subdomains.
    names: Vec<String>,
    /// `--allow-host '*'`: no check (behind a reverse proxy that does its own).
    any: bool,
}

impl AllowedHosts {
    pub fn new(bind: IpAddr, allow: &[String]) -> Self {
        let names: Vec<String> = allow
            .iter()
            .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        AllowedHosts {
            bind,
            any: names.iter().any(|n| n == "*"),
            names,
        }
    }

    /// Whether a request whose `Host` header is `host` (`name[:port]`) is for this server.
    pub fn admits(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let Some(name) = host_name(host) else {
            return false;
        };
        if let Ok(ip) = name.trim_start_matches('[').trim_end_matches(']').parse() {
            let ip: IpAddr = ip;
            return if self.bind.is_unspecified() {
                // Every address of the machine; an address cannot be rebound, so any will do.
                true
            } else if self.bind.is_loopback() {
                ip.is_loopback()
            } else {
                ip == self.bind
            };
        }
        if name == "localhost" && (self.bind.is_loopback() || self.bind.is_unspecified()) {
            return true;
        }
        self.names
            .iter()
            .any(|n| *n == name || (n.starts_with('.') && name.ends_with(n.as_str())))
    }

    /// What the server answers, for the refusal's message.
    pub(crate) fn describe(&self) -> String {
        let mut known = if self.bind.is_unspecified() {
            vec![
                "localhost".to_string(),
                "this machine's addresses".to_string(),
            ]
        } else if self.bind.is_loopback() {
            vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
        } else {
            vec![bracketed(self.bind)]
        };
        known.extend(self.names.iter().cloned());
        known.join(", ")
    }
}

fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The host part of a `Host` header, lower-cased, without its port; `None` if it is no valid
/// authority (or carries user information, which a `Host` never does).
pub(crate) fn host_name(host: &str) -> Option<String> {
    let authority: axum::http::uri::Authority = host.parse().ok()?;
    let port = &authority.as_str()[authority.host().len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok());
    if authority.as_str().contains('@') || !port_ok {
        return None;
    }
    Some(authority.host().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(bind: &str, allow: &[&str]) -> AllowedHosts {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        AllowedHosts::new(bind.parse().unwrap(), &allow)
    }

    #[test]
    fn a_loopback_server_answers_loopback_names_only() {
        let h = hosts("127.0.0.1", &[]);
        for ok in [
            "localhost",
            "localhost:7878",
            "LocalHost:1",
            "127.0.0.1",
            "127.0.0.1:7878",
            "[::1]:7878",
            "[::1]",
        ] {
            assert!(h.admits(ok), "{ok}");
        }
        for refused in [
            "evil.example.com",
            "evil.example.com:7878",
            "localhost.evil.com",
            "evil.localhost",
            "192.168.1.5:7878",
            "",
            "a b",
            "user@localhost",
            "localhost:notaport",
        ] {
            assert!(!h.admits(refused), "{refused}");
        }
    }

    #[test]
    fn names_can_be_allowed_and_the_check_turned_off() {
        let h = hosts("127.0.0.1", &["photos.lan", ".home.arpa"]);
        assert!(h.admits("Photos.LAN:7878"));
        assert!(h.admits("nas.home.arpa"));
        assert!(!h.admits("home.arpa.evil.com"));
        assert!(!h.admits("evil.example.com"));
        assert!(hosts("127.0.0.1", &["*"]).admits("anything.example"));
    }

    #[test]
    fn other_binds_answer_their_address() {
        let h = hosts("192.168.1.5", &[]);
        assert!(h.admits("192.168.1.5:7878"));
        assert!(!h.admits("192.168.1.6:7878"));
        assert!(!h.admits("localhost"));
        assert!(!h.admits("evil.example.com"));
        let every = hosts("0.0.0.0", &[]);
        assert!(every.admits("10.1.2.3:7878"));
        assert!(every.admits("[fe80::1]:7878"));
        assert!(every.admits("localhost:7878"));
        assert!(!every.admits("evil.example.com:7878"));
        assert!(hosts("::", &[]).admits("192.168.1.5"));
    }
}
