//! `clipsearch serve` over HTTP on loopback: every endpoint, malformed requests, oversized
//! uploads, tokens, and a path-traversal corpus under which nothing outside the index comes out.

mod support;

use std::path::{Path, PathBuf};

use support::http::{raw_within, send, Reply};
use support::*;

fn start(index: &Path, extra: &[&str]) -> Server {
    serve(index, extra)
}

fn request(addr: &str, method: &str, target: &str, headers: &[&str], body: &[u8]) -> Reply {
    send(addr, addr, method, target, headers, body)
}

fn get(addr: &str, target: &str) -> Reply {
    request(addr, "GET", target, &[], b"")
}

struct Library {
    _tmp: tempfile::TempDir,
    photos: PathBuf,
    index: PathBuf,
    outside: PathBuf,
}

fn library() -> Library {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for i in 0..6 {
        write_jpeg(&photos.join(format!("p{i}.jpg")), &photo(640, 480, i));
    }
    // The same picture twice: a duplicate group.
    std::fs::copy(photos.join("p0.jpg"), photos.join("copy-of-p0.jpg")).unwrap();
    let outside = tmp.path().join("secret.txt");
    std::fs::write(&outside, "root:x:0:0:secret").unwrap();
    let index_dir = tmp.path().join("index");
    index(&photos, &index_dir, &[]);
    Library {
        _tmp: tmp,
        photos,
        index: index_dir,
        outside,
    }
}

fn id_of(addr: &str, path: &Path) -> u64 {
    let r = get(addr, "/api/search?q=a%20photo&n=100").json();
    let canonical = path.canonicalize().unwrap();
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| Path::new(h["path"].as_str().unwrap()) == canonical)
        .unwrap_or_else(|| panic!("{} not in {r}", path.display()))["id"]
        .as_u64()
        .unwrap()
}

#[test]
fn every_endpoint_answers() {
    let lib = library();
    let server = start(&lib.index, &["--max-upload-mb", "1"]);
    let addr = server.addr.as_str();

    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.headers.contains("text/html"));
    assert!(String::from_utf8_lossy(&page.body).contains("/api/search"));
    assert!(
        !String::from_utf8_lossy(&page.body).contains("http"),
        "no network resources"
    );

    let r = get(addr, "/api/search?q=a%20photo&n=3");
    assert_eq!(r.status, 200);
    let hits = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 3);
    for h in &hits {
        assert!(
            h["id"].is_u64() && h["path"].is_string() && h["score"].is_f64(),
            "{h}"
        );
        assert_eq!(h["thumbnail"], format!("/thumb/{}", h["id"]));
    }
    let stats = get(addr, "/api/stats").json();
    assert_eq!(stats["files"], 7);

    let p0 = id_of(addr, &lib.photos.join("p0.jpg"));
    let similar = get(addr, &format!("/api/similar/{p0}?n=3")).json();
    let ids: Vec<u64> = similar["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&p0), "the image itself is left out");
    let copy = id_of(addr, &lib.photos.join("copy-of-p0.jpg"));
    assert_eq!(ids[0], copy, "its copy comes first");

    let upload = std::fs::read(lib.photos.join("p3.jpg")).unwrap();
    let r = request(
        addr,
        "POST",
        "/api/similar?n=2",
        &["Content-Type: image/jpeg"],
        &upload,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let p3 = id_of(addr, &lib.photos.join("p3.jpg"));
    assert_eq!(r.json()["results"][0]["id"], p3, "an upload of p3 finds p3");

    let body =
        format!(r#"{{"terms": [{{"text": "a photo"}}, {{"id": {p0}, "weight": -0.5}}], "n": 4}}"#);
    let r = request(
        addr,
        "POST",
        "/api/query",
        &["Content-Type: application/json"],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 4);

    let dupes = get(addr, "/api/dupes?threshold=0.99").json();
    let group = dupes["groups"][0].as_array().unwrap();
    assert_eq!(group.len(), 2, "{dupes}");

    let thumb = get(addr, &format!("/thumb/{p0}"));
    assert_eq!(thumb.status, 200);
    assert!(thumb.headers.contains("image/jpeg"));
    let img = image::load_from_memory(&thumb.body).unwrap();
    assert_eq!((img.width(), img.height()), (320, 240));
    assert!(
        lib.index.join("thumbnails").read_dir().unwrap().count() >= 1,
        "cached"
    );
    assert_eq!(get(addr, &format!("/thumb/{p0}")).body, thumb.body);

    let original = get(addr, &format!("/image/{p0}"));
    assert_eq!(original.status, 200);
    assert_eq!(
        original.body,
        std::fs::read(lib.photos.join("p0.jpg")).unwrap()
    );
}

#[test]
fn bad_requests_get_json_errors_and_the_server_survives() {
    let lib = library();
    let server = start(&lib.index, &["--max-upload-mb", "1"]);
    let addr = server.addr.as_str();
    let json = ["Content-Type: application/json"];
    let cases: Vec<(Reply, u16)> = vec![
        (get(addr, "/api/search"), 400),
        (get(addr, "/api/search?q="), 400),
        (get(addr, "/api/search?q=x&n=lots"), 400),
        (get(addr, "/api/similar/abc"), 400),
        (get(addr, "/api/similar/99999"), 404),
        (get(addr, "/api/dupes?threshold=7"), 400),
        (get(addr, "/api/nothing"), 404),
        (
            request(addr, "POST", "/api/query", &json, b"{not json"),
            400,
        ),
        (
            request(addr, "POST", "/api/query", &json, br#"{"terms": []}"#),
            400,
        ),
        (
            request(
                addr,
                "POST",
                "/api/query",
                &json,
                br#"{"terms": [{"text": "a", "id": 1}]}"#,
            ),
            400,
        ),
        (
            request(
                addr,
                "POST",
                "/api/query",
                &json,
                br#"{"terms": [{"path": "/etc/passwd"}]}"#,
            ),
            422,
        ),
        (
            request(
                addr,
                "POST",
                "/api/query",
                &[],
                br#"{"terms": [{"text": "a"}]}"#,
            ),
            415,
        ),
        (request(addr, "POST", "/api/similar", &[], b""), 400),
        (
            request(addr, "POST", "/api/similar", &[], b"this is not an image"),
            422,
        ),
        (
            request(addr, "POST", "/api/similar", &[], &vec![0xffu8; 2 << 20]),
            413,
        ),
    ];
    for (i, (reply, want)) in cases.iter().enumerate() {
        assert_eq!(
            reply.status,
            *want,
            "case {i}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(reply.json()["error"].is_string(), "case {i}");
    }
    // Garbage on the wire is refused without taking the server down.
    // (A reply is not required: the server may just hang up.)
    let _ = raw_within(addr, b"\x00\x01\x02 garbage\r\n\r\n", 3);
    let _ = raw_within(
        addr,
        b"GET /api/search?q=x HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        3,
    );
    let _ = raw_within(addr, &[b'A'; 100_000], 3);
    assert_eq!(get(addr, "/api/stats").status, 200, "still serving");
}

#[test]
fn nothing_outside_the_index_is_served() {
    let lib = library();
    let server = start(&lib.index, &[]);
    let addr = server.addr.as_str();
    let secret = lib.outside.to_str().unwrap();
    let corpus = [
        "/image/..%2f..%2fetc%2fpasswd".to_string(),
        "/image/%2e%2e/%2e%2e/etc/passwd".into(),
        "/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd".into(),
        "/image/..%252f..%252fetc%252fpasswd".into(),
        "/thumb/../../etc/passwd".into(),
        "/image//etc/passwd".into(),
        format!("/image/{secret}"),
        format!("/image/{}", secret.replace('/', "%2f")),
        "/../../../../etc/passwd".into(),
        "/api/../../etc/passwd".into(),
        "/image/-1".into(),
        "/image/1.0".into(),
        "/image/0x1".into(),
        "/image/18446744073709551616".into(),
        "/image/1%00".into(),
        "/image/1/../../etc/passwd".into(),
        "/image/1?path=/etc/passwd".into(),
        "/thumb/%c0%ae%c0%ae/etc/passwd".into(),
    ];
    for target in &corpus {
        let reply = get(addr, target);
        let body = String::from_utf8_lossy(&reply.body);
        assert!(
            reply.status >= 400 || target.starts_with("/image/1?"),
            "{target} answered {}",
            reply.status
        );
        assert!(!body.contains("root:"), "{target} leaked a file");
    }
    // An indexed file replaced by a symlink to a file outside the collection.
    let p5 = lib.photos.join("p5.jpg");
    let id = id_of(addr, &p5);
    std::fs::remove_file(&p5).unwrap();
    std::os::unix::fs::symlink(&lib.outside, &p5).unwrap();
    for target in [format!("/image/{id}"), format!("/thumb/{id}")] {
        let reply = get(addr, &target);
        assert_eq!(reply.status, 410, "{target}");
        assert!(!String::from_utf8_lossy(&reply.body).contains("root:"));
    }
}

#[test]
fn tokens_guard_the_api_and_other_addresses_need_one() {
    let lib = library();
    let out = run(clipsearch()
        .arg("serve")
        .arg("--index")
        .arg(&lib.index)
        .args(["--bind", "0.0.0.0:0"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--token"), "{}", stderr(&out));

    let server = start(&lib.index, &["--token", "s3cret"]);
    let addr = server.addr.as_str();
    assert_eq!(get(addr, "/").status, 200, "the page itself is public");
    assert_eq!(get(addr, "/api/stats").status, 401);
    assert_eq!(
        request(
            addr,
            "GET",
            "/api/stats",
            &["Authorization: Bearer wrong"],
            b""
        )
        .status,
        401
    );
    assert_eq!(
        request(
            addr,
            "GET",
            "/api/stats",
            &["Authorization: Bearer s3cret"],
            b""
        )
        .status,
        200
    );
    assert_eq!(get(addr, "/api/stats?token=s3cret").status, 200);
    assert_eq!(get(addr, "/thumb/1").status, 401);
}

fn wait_for_files(addr: &str, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let stats = get(addr, "/api/stats").json();
        if stats["files"] == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the index never reached {n} files: {stats}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn watch_keeps_the_index_current_and_the_cli_is_pointed_at_the_server() {
    let lib = library();
    let watch = lib.photos.to_str().unwrap().to_string();
    let server = start(&lib.index, &["--watch", &watch]);
    let addr = server.addr.as_str();
    wait_for_files(addr, 7);

    // A new photo appears in search; a deleted one leaves it.
    write_jpeg(&lib.photos.join("new.jpg"), &photo(500, 400, 77));
    wait_for_files(addr, 8);
    let new_id = id_of(addr, &lib.photos.join("new.jpg"));
    assert_eq!(get(addr, &format!("/thumb/{new_id}")).status, 200);
    std::fs::remove_file(lib.photos.join("p1.jpg")).unwrap();
    wait_for_files(addr, 7);
    let r = get(addr, "/api/search?q=a%20photo&n=100").json();
    assert!(
        !r.to_string().contains("p1.jpg"),
        "the deleted photo is no longer found: {r}"
    );

    // Readers run beside the server that indexes: the CLI searches the same views.
    let out = run(clipsearch()
        .args(["search", "a photo", "-n", "100", "--json", "--index"])
        .arg(&lib.index));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out).len(), 7);
    // A second writer cannot: it is told where the server is.
    let out = run(&mut index_command(&lib.photos, &lib.index));
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains(&format!("http://{addr}/")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_server_without_watch_picks_up_what_an_index_run_beside_it_publishes() {
    let lib = library();
    let server = start(&lib.index, &[]);
    let addr = server.addr.as_str();
    assert_eq!(get(addr, "/api/stats").json()["files"], 7);
    // The server holds no lock: an index run beside it works, and its results show up.
    write_jpeg(&lib.photos.join("later.jpg"), &photo(500, 400, 91));
    index(&lib.photos, &lib.index, &[]);
    wait_for_files(addr, 8);
    let id = id_of(addr, &lib.photos.join("later.jpg"));
    assert_eq!(get(addr, &format!("/thumb/{id}")).status, 200);
}
