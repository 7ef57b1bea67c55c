//! Raw HTTP/1.1 against a test server: requests written byte for byte (clients would normalise
//! what the serve tests must send as it is: traversal paths, foreign hosts, malformed headers),
//! replies parsed by hand.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Reply {
    pub status: u16,
    /// The head: header names lower-cased, values as sent.
    pub headers: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.status, self.text()))
    }

    /// The value of header `name` (lower-case), if the reply has it.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    }
}

/// A reply read off the wire; `None` if it has no complete head.
pub fn parse(buf: &[u8]) -> Option<Reply> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let headers = head
        .lines()
        .map(|l| match l.split_once(':') {
            Some((k, v)) => format!("{}:{v}", k.to_ascii_lowercase()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Some(Reply {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    })
}

/// Writes `request` as it is and reads until the server closes (or `seconds` pass); `None` if
/// it closed without a reply.
pub fn raw_within(addr: &str, request: &[u8], seconds: u64) -> Option<Reply> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(seconds)))
        .unwrap();
    s.write_all(request).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse(&buf)
}

/// `method target` to the server at `addr`, naming it `host`, with `headers` and `body`.
pub fn send(
    addr: &str,
    host: &str,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &[u8],
) -> Reply {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw_within(addr, &bytes, 30).unwrap_or_else(|| panic!("no reply to {method} {target}"))
}
