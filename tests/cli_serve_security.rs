//! `clipsearch serve` against what a hostile web page, a hostile network client and a careless
//! URL can do: DNS rebinding (a foreign `Host`), cross-site requests and form posts, framing,
//! tokens in URLs, HTTPS on a LAN, and malformed requests, none of which may bring it down.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::http::{parse, raw_within, send, Reply};
use support::*;

fn get(addr: &str, target: &str, headers: &[&str]) -> Reply {
    send(addr, addr, "GET", target, headers, b"")
}

struct Library {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    photos: PathBuf,
    index: PathBuf,
}

fn library() -> Library {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for i in 0..4 {
        write_jpeg(&photos.join(format!("p{i}.jpg")), &photo(320, 240, i));
    }
    let index_dir = tmp.path().join("index");
    index(&photos, &index_dir, &[]);
    Library {
        dir: tmp.path().to_path_buf(),
        _tmp: tmp,
        photos,
        index: index_dir,
    }
}

const EVERY_PATH: [&str; 10] = [
    "/",
    "/?token=x",
    "/page.js",
    "/page.css",
    "/api/search?q=a%20photo",
    "/api/stats",
    "/api/info/1",
    "/thumb/1",
    "/image/1",
    "/no/such/endpoint",
];

#[test]
fn a_rebinding_page_gets_nothing() {
    let lib = library();
    let server = serve(&lib.index, &["--allow-host", "photos.lan"]);
    let addr = server.addr.as_str();
    let port = addr.rsplit(':').next().unwrap();
    for path in EVERY_PATH {
        for host in [
            "evil.example.com".to_string(),
            format!("evil.example.com:{port}"),
            format!("localhost.evil.example:{port}"),
        ] {
            let r = send(addr, &host, "GET", path, &[], b"");
            assert_eq!(r.status, 403, "{host} {path}: {}", r.text());
            let error: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let message = error["error"].as_str().unwrap();
            assert!(
                message.contains("--allow-host evil.example.com")
                    || message.contains("--allow-host localhost.evil.example"),
                "says which option admits it: {message}"
            );
        }
        let r = send(addr, &host_for(addr, "localhost"), "GET", path, &[], b"");
        assert_ne!(r.status, 403, "localhost {path}: {}", r.text());
    }
    let uploaded = std::fs::read(lib.photos.join("p1.jpg")).unwrap();
    let r = send(
        addr,
        "evil.example.com",
        "POST",
        "/api/similar",
        &[],
        &uploaded,
    );
    assert_eq!(r.status, 403);
    // Names given with --allow-host, and the loopback addresses, are answered.
    for host in [
        format!("photos.lan:{port}"),
        format!("PHOTOS.LAN:{port}"),
        format!("[::1]:{port}"),
        addr.to_string(),
    ] {
        let r = send(addr, &host, "GET", "/api/stats", &[], b"");
        assert_eq!(r.status, 200, "{host}: {}", r.text());
    }
    // HTTP/1.1 without a Host at all.
    let r = raw_within(
        addr,
        b"GET /api/stats HTTP/1.1\r\nConnection: close\r\n\r\n",
        30,
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
}

fn host_for(addr: &str, name: &str) -> String {
    format!("{name}:{}", addr.rsplit(':').next().unwrap())
}

#[test]
fn cross_site_requests_and_forms_are_refused() {
    let lib = library();
    let server = serve(&lib.index, &[]);
    let addr = server.addr.as_str();
    let upload = std::fs::read(lib.photos.join("p2.jpg")).unwrap();
    let post = |headers: &[&str]| send(addr, addr, "POST", "/api/similar?n=2", headers, &upload);

    // Another site's page posting an image (fetch or form), or reading the API.
    for headers in [
        &["Origin: https://evil.example.com"][..],
        &["Origin: null"][..],
        &["Sec-Fetch-Site: cross-site"][..],
        &["Sec-Fetch-Site: same-site", "Origin: http://localhost:3000"][..],
        &[
            "Origin: https://evil.example.com",
            "Sec-Fetch-Site: cross-site",
            "Content-Type: multipart/form-data; boundary=x",
        ][..],
        // A form post that carries the user's cookie but no sign of the page.
        &["Cookie: clipsearch_token=abc"][..],
    ] {
        let r = post(headers);
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
        assert!(r.text().contains("refused"), "{}", r.text());
    }
    for target in [
        "/api/search?q=a%20photo",
        "/image/1",
        "/thumb/1",
        "/page.js",
    ] {
        let r = get(addr, target, &["Sec-Fetch-Site: cross-site"]);
        assert_eq!(r.status, 403, "{target}");
        let r = get(addr, target, &["Origin: https://evil.example.com"]);
        assert_eq!(r.status, 403, "{target}");
    }
    // Plain navigation to the page from a link elsewhere is fine.
    let r = get(
        addr,
        "/",
        &["Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: navigate"],
    );
    assert_eq!(r.status, 200);

    // The page's own requests, and scripts that send no browser headers, are answered.
    let own = format!("Origin: http://{addr}");
    for headers in [
        &[own.as_str(), "Sec-Fetch-Site: same-origin"][..],
        &[
            "Sec-Fetch-Site: same-origin",
            "X-Clipsearch: page",
            "Cookie: a=b",
        ][..],
        &[][..],
    ] {
        let r = post(headers);
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["results"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
    let r = get(
        addr,
        "/api/search?q=a%20photo",
        &["Sec-Fetch-Site: same-origin"],
    );
    assert_eq!(r.status, 200);
    let r = get(addr, "/", &["Sec-Fetch-Site: none"]);
    assert_eq!(r.status, 200);
}

#[test]
fn every_response_carries_the_security_headers() {
    let lib = library();
    let server = serve(&lib.index, &[]);
    let addr = server.addr.as_str();
    let mut replies: Vec<(String, Reply)> = EVERY_PATH
        .iter()
        .map(|p| (p.to_string(), get(addr, p, &[])))
        .collect();
    replies.push((
        "refused host".into(),
        send(addr, "evil.example.com", "GET", "/", &[], b""),
    ));
    replies.push(("bad id".into(), get(addr, "/api/similar/notanumber", &[])));
    let statuses: Vec<u16> = replies.iter().map(|(_, r)| r.status).collect();
    assert!(statuses.contains(&200) && statuses.contains(&403) && statuses.contains(&404));
    for (what, r) in &replies {
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{what}: no CSP in {}", r.headers));
        for part in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "img-src 'self' data: blob:",
        ] {
            assert!(csp.contains(part), "{what}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
        assert_eq!(
            r.header("x-frame-options").as_deref(),
            Some("DENY"),
            "{what}"
        );
        assert_eq!(
            r.header("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{what}"
        );
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{what}"
        );
    }
    // The page loads its script and style from the server: nothing inline for the CSP to refuse.
    let page = get(addr, "/", &[]).text();
    let inline_handler = page.match_indices(" on").any(|(i, _)| {
        let name: String = page[i + 3..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase())
            .collect();
        !name.is_empty() && page[i + 3 + name.len()..].starts_with('=')
    });
    assert!(
        !page.contains("<style") && !inline_handler && !page.contains("<script>"),
        "{page}"
    );
    assert!(page.contains(r#"<script src="/page.js">"#));
    let script = get(addr, "/page.js", &[]);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().contains("/api/search"));
    assert!(
        !script.text().contains("token="),
        "the page never puts a token in a URL"
    );
}

#[test]
fn the_token_moves_from_the_url_into_a_cookie() {
    let lib = library();
    let server = serve(&lib.index, &["--token", "s3cret tok;en"]);
    let addr = server.addr.as_str();
    let token = "s3cret%20tok%3Ben";

    let r = get(addr, &format!("/?q=a+dog&token={token}&place=Lisbon"), &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.header("location").unwrap();
    assert_eq!(
        location, "/?q=a+dog&place=Lisbon",
        "the token leaves the address"
    );
    let cookie = r.header("set-cookie").unwrap();
    for part in ["clipsearch_token=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains("s3cret") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();

    let with_cookie = format!("Cookie: theme=dark; {pair}");
    for target in ["/api/stats", "/api/search?q=a%20photo", "/thumb/1"] {
        assert_eq!(get(addr, target, &[&with_cookie]).status, 200, "{target}");
        assert_eq!(get(addr, target, &[]).status, 401, "{target}");
        assert_eq!(
            get(addr, target, &["Cookie: clipsearch_token=0000"]).status,
            401,
            "{target}"
        );
    }
    let r = get(addr, "/api/stats", &[]);
    assert!(
        r.text().contains("/?token="),
        "says how a browser logs in: {}",
        r.text()
    );
    assert_eq!(
        get(addr, "/api/stats", &["Authorization: Bearer s3cret tok;en"]).status,
        200
    );
    // A wrong token in the page's URL sets nothing.
    let r = get(addr, "/?token=wrong", &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    // Without --token, a stray ?token= is simply cleaned off.
    let open = serve(&lib.index, &[]);
    let r = get(&open.addr, "/?token=x&q=cat", &[]);
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/?q=cat"))
    );
}

/// A self-signed certificate for localhost and 127.0.0.1, and its key, as PEM files.
fn certificate(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    (cert_file, key_file, cert.cert.der().to_vec())
}

#[test]
fn https_with_a_certificate_and_a_secure_cookie() {
    let lib = library();
    let (cert, key, der) = certificate(&lib.dir);
    let server = serve(
        &lib.index,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--token",
            "s3cret",
        ],
    );
    let port = server.addr.rsplit(':').next().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let agent = ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .redirects(0)
        .timeout(Duration::from_secs(60))
        .build();
    let base = format!("https://localhost:{port}");
    let r = agent
        .get(&format!("{base}/api/stats"))
        .set("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(stats["files"], 4);
    assert!(matches!(
        agent.get(&format!("{base}/api/stats")).call(),
        Err(ureq::Error::Status(401, _))
    ));
    let r = agent.get(&format!("{base}/?token=s3cret")).call().unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert!(r.header("content-security-policy").is_some());
    // Plain HTTP on the TLS port gets no page.
    let plain = raw_within(
        &server.addr,
        format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes(),
        15,
    );
    assert!(plain.is_none_or(|r| r.status != 200));
}

#[test]
fn a_bad_certificate_or_key_is_said_before_serving() {
    let lib = library();
    let (cert, key, _) = certificate(&lib.dir);
    let junk = lib.dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let (other, other_key, _) = {
        let d = lib.dir.join("other");
        std::fs::create_dir(&d).unwrap();
        certificate(&d)
    };
    let _ = other;
    for (c, k, says) in [
        (&junk, &key, "holds no PEM certificate"),
        (&cert, &junk, "cannot read the private key"),
        (
            &lib.dir.join("missing.pem"),
            &key,
            "cannot read the certificate",
        ),
        (&cert, &other_key, "do not make a TLS configuration"),
    ] {
        let out = run(clipsearch()
            .arg("serve")
            .arg("--index")
            .arg(&lib.index)
            .args(["--bind", "127.0.0.1:0", "--tls-cert"])
            .arg(c)
            .arg("--tls-key")
            .arg(k));
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(says), "{says:?} not in {err}");
    }
    let out = run(clipsearch()
        .arg("serve")
        .arg("--index")
        .arg(&lib.index)
        .arg("--tls-cert")
        .arg(&cert));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--tls-key"), "{}", stderr(&out));
}

/// Malformed and hostile requests, bounded in number and time: each gets an error or a
/// closed connection, and the server answers a normal request after all of them.
#[test]
fn malformed_requests_never_bring_the_server_down() {
    let lib = library();
    let server = serve(&lib.index, &["--timeout", "3", "--max-upload-mb", "1"]);
    let addr = server.addr.as_str();
    let long_host = "a".repeat(70_000);
    let huge_header = format!("X-Big: {}", "b".repeat(200_000));
    let requests: Vec<Vec<u8>> = vec![
        format!("GET / HTTP/1.1\r\nHost: {long_host}\r\n\r\n").into_bytes(),
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a b c\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: \xff\xfe\x00\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example.com\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: user@localhost\r\n\r\n".to_vec(),
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\n{huge_header}\r\n\r\n").into_bytes(),
        format!("GET /api/search?q={} HTTP/1.1\r\nHost: {addr}\r\n\r\n", "x".repeat(100_000)).into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello".to_vec(),
        b"NOT-HTTP\r\n\r\n".to_vec(),
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\nOrigin: \x01\r\nSec-Fetch-Site: \x7f\r\n\r\n").into_bytes(),
        format!("POST /api/similar HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 99999999999999999999\r\n\r\n").into_bytes(),
        format!("POST /api/similar HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").into_bytes(),
    ];
    // A cookie header of nothing but separators, on the public page and on the API: answered.
    for target in ["/", "/api/stats"] {
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: ;;;==;clipsearch_token\r\n\r\n"
        );
        assert_eq!(
            raw_within(addr, req.as_bytes(), 20).map(|r| r.status),
            Some(200)
        );
    }
    for (i, req) in requests.iter().enumerate() {
        // Closed after the reply, so that a keep-alive connection does not hold the test.
        let mut req = req.clone();
        if let Some(end) = req.windows(2).position(|w| w == b"\r\n") {
            req.splice(end + 2..end + 2, b"Connection: close\r\n".iter().copied());
        }
        let started = Instant::now();
        if let Some(r) = raw_within(addr, &req, 20) {
            assert!(r.status >= 400, "request {i} was answered {}", r.status);
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "request {i} held {:?}",
            started.elapsed()
        );
    }
    // A body that trickles in and stalls, well within the request limit, then past it.
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        format!("POST /api/similar HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    for _ in 0..5 {
        s.write_all(b"0123456789").unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = started.elapsed();
    if let Some(r) = parse(&buf) {
        assert!(r.status >= 400, "a stalled body got {}", r.status);
    }
    assert!(
        waited < Duration::from_secs(25),
        "a stalled body held the connection {waited:?}"
    );
    let r = get(addr, "/api/stats", &[]);
    assert_eq!(r.status, 200, "still serving after the malformed requests");
}
