//! The search page in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver) against the real server. Type a query, see thumbnails, open one, ask for more
//! like it, see similar photos; a screenshot is saved to `target/browser/search.png`.
//!
//! Needs the `chromium` and `chromium-driver` packages (`.ci/run` installs them), so it is a
//! separate target: `cargo test -p clipsearch-cli --test browser`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find(names: &[&str]) -> PathBuf {
    names
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("none of {names:?} exists: install Debian's chromium and chromium-driver (bash .ci/run does)")
        })
}

/// A WebDriver session.
struct Browser {
    base: String,
    _driver: Killed,
}

impl Drop for Browser {
    /// Ends the session (closing Chromium) even when an assertion failed, before the driver is
    /// killed: a killed driver would leave its browser running.
    fn drop(&mut self) {
        if self.base.contains("/session/") {
            let _ = ureq::delete(&self.base).call();
        }
    }
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let res = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let text = match res {
            Ok(r) => r.into_string().unwrap(),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "{method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("{method} {path}: {e}"),
        };
        serde_json::from_str::<Value>(&text).unwrap()["value"].clone()
    }

    fn start() -> (Browser, String) {
        let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut browser = Browser {
            base: format!("http://127.0.0.1:{port}"),
            _driver: Killed(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{}/status", browser.base))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let session = browser.call(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                // The console, to find what the page's CSP refused (or any other error).
                "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,900"]
                }
            }}})),
        );
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        (browser, id)
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        // The reference is the object's one value (under W3C's web-element key).
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    /// The console's errors since the last call (a CSP refusal is one): chromedriver's log.
    fn console_errors(&self) -> Vec<String> {
        let entries = self.call("POST", "/se/log", Some(json!({"type": "browser"})));
        let entries = entries
            .as_array()
            .unwrap_or_else(|| panic!("no browser log: {entries}"));
        entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Polls `js` until it returns something truthy.
    fn wait_for(&self, js: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.script(js);
            if v.as_bool() == Some(true) || v.as_u64().is_some_and(|n| n > 0) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn search_open_and_more_like_this_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for i in 0..8 {
        write_jpeg(&photos.join(format!("p{i}.jpg")), &photo(480, 360, i));
    }
    let index_dir = tmp.path().join("index");
    index(&photos, &index_dir, &[]);
    let server = serve(&index_dir, &[]);
    let url = format!("http://{}/", server.addr);
    let (browser, _) = Browser::start();

    browser.call("POST", "/url", Some(json!({ "url": url })));
    let q = browser.element("#q");
    browser.call(
        "POST",
        &format!("/element/{q}/value"),
        Some(json!({"text": "a photo of a sunset\u{E007}"})),
    );
    // Every indexed photo is shown, as a thumbnail that loaded.
    let loaded = |n: usize| {
        format!(
            "const imgs = [...document.querySelectorAll('.hit img')];\
             return imgs.length === {n} && imgs.every(i => i.complete && i.naturalWidth > 0)"
        )
    };
    browser.wait_for(&loaded(8), "8 thumbnails");
    let scores = browser.script(
        "return [...document.querySelectorAll('.hit .score')].map(s => parseFloat(s.textContent))",
    );
    let scores: Vec<f64> = serde_json::from_value(scores).unwrap();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    let first = browser.element(".hit");
    let first_id = browser.script("return document.querySelector('.hit').dataset.id");
    // Without its id the "left out" check below could not fail: the id must be there.
    let first_id: u64 = first_id
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the first hit has no index id: {first_id}"));
    browser.call("POST", &format!("/element/{first}/click"), Some(json!({})));
    browser.wait_for(
        "const v = document.getElementById('viewer'), i = document.getElementById('large');\
         return v.classList.contains('open') && i.complete && i.naturalWidth > 0",
        "the large photo",
    );
    let more = browser.element("#more");
    browser.call("POST", &format!("/element/{more}/click"), Some(json!({})));
    browser.wait_for(
        "return document.getElementById('status').textContent.startsWith('7 results for images like')",
        "similar photos",
    );
    let ids =
        browser.script("return [...document.querySelectorAll('.hit')].map(h => h.dataset.id)");
    let ids: Vec<String> = serde_json::from_value(ids).unwrap();
    let ids: Vec<u64> = ids
        .iter()
        .map(|i| i.parse().unwrap_or_else(|_| panic!("a hit's id {i:?}")))
        .collect();
    assert_eq!(ids.len(), 7);
    assert!(!ids.contains(&first_id), "the photo itself is left out");
    browser.wait_for(&loaded(7), "similar thumbnails");
    // All of it under the server's Content-Security-Policy, with nothing refused.
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    let png = browser.call("GET", "/screenshot", None);
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        png.as_str().unwrap(),
    )
    .unwrap();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("search.png"), &png).unwrap();
    assert!(image::load_from_memory(&png).unwrap().width() >= 1000);
}

/// 2015-01-01 12:00 UTC, for the fixtures that record no date.
const OLD: u64 = 1_420_113_600;

#[test]
fn filtered_date_sorted_search_and_the_info_panel_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for name in [
        "lisbon.jpg",
        "sydney.jpg",
        "rio.png",
        "tokyo.webp",
        "digitized.jpg",
        "xmp_only.jpg",
        "plain.jpg",
    ] {
        std::fs::copy(fixtures().join("exif").join(name), photos.join(name)).unwrap();
    }
    std::fs::File::options()
        .write(true)
        .open(photos.join("plain.jpg"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(OLD))
        .unwrap();
    let index_dir = tmp.path().join("index");
    index(&photos, &index_dir, &[]);
    let server = serve(&index_dir, &[]);
    let (browser, _) = Browser::start();
    browser.call(
        "POST",
        "/url",
        Some(json!({ "url": format!("http://{}/", server.addr) })),
    );
    let type_into = |css: &str, text: &str| {
        let e = browser.element(css);
        browser.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    };
    // Filters only (no text), newest first: the photos from 2019 on, grouped by month.
    browser.script("document.getElementById('sort').value = '-date'; return true");
    type_into("#f-after", "2019");
    type_into("#f-before", "2022\u{E007}");
    browser.wait_for(
        "return document.querySelectorAll('.hit').length === 4",
        "4 photos from 2019 to 2022",
    );
    let taken = browser.script(
        "return [...document.querySelectorAll('.hit')].map(h => h.dataset.taken.slice(0, 10))",
    );
    assert_eq!(
        taken,
        json!(["2022-04-01", "2021-03-04", "2020-07-04", "2019-12-31"]),
        "newest first"
    );
    let months =
        browser.script("return [...document.querySelectorAll('.month')].map(m => m.textContent)");
    assert_eq!(
        months,
        json!(["April 2022", "March 2021", "July 2020", "December 2019"])
    );
    // A text query narrowed by place: only Lisbon's photo.
    browser.script(
        "for (const id of ['f-after', 'f-before']) document.getElementById(id).value = ''; return true",
    );
    type_into("#f-place", "portugal");
    type_into("#q", "a photo\u{E007}");
    browser.wait_for(
        "const h = [...document.querySelectorAll('.hit')];\
         return h.length === 1 && h[0].dataset.taken.startsWith('2023-06-14')",
        "the Lisbon photo",
    );
    // Its info panel: date, place, camera, size, path.
    let hit = browser.element(".hit");
    browser.call("POST", &format!("/element/{hit}/click"), Some(json!({})));
    browser.wait_for(
        "return document.querySelectorAll('#info dd').length >= 4",
        "the info panel",
    );
    let info = browser.script("return document.getElementById('info').innerText");
    let info = info.as_str().unwrap();
    for want in [
        "2023-06-14 10:03:12.250+01:00",
        "Lisbon, Portugal",
        "Canon EOS R5, RF24-105mm F4 L IS USM",
        "64 × 48",
        "lisbon.jpg",
    ] {
        assert!(
            info.contains(want),
            "{want:?} not in the info panel: {info}"
        );
    }
    // The URL keeps the filters, so the search can be shared and reloaded.
    let url = browser.call("GET", "/url", None);
    assert!(url.as_str().unwrap().contains("place=portugal"), "{url}");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[test]
fn a_token_in_the_address_moves_into_a_cookie_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for i in 0..3 {
        write_jpeg(&photos.join(format!("p{i}.jpg")), &photo(320, 240, i));
    }
    let index_dir = tmp.path().join("index");
    index(&photos, &index_dir, &[]);
    let server = serve(&index_dir, &["--token", "s3cret"]);
    let (browser, _) = Browser::start();
    // As a user opens the link they were given: the first search comes with it.
    let base = format!("http://{}/", server.addr);
    browser.call(
        "POST",
        "/url",
        Some(json!({ "url": format!("{base}?token=s3cret&q=a%20photo") })),
    );
    browser.wait_for(
        "const imgs = [...document.querySelectorAll('.hit img')];\
         return imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth > 0)",
        "3 thumbnails, with the token only in the cookie",
    );
    let url = browser.call("GET", "/url", None);
    let url = url.as_str().unwrap();
    assert!(
        !url.contains("token"),
        "the token left the address bar: {url}"
    );
    assert!(url.contains("q=a+photo"), "{url}");
    let cookie = browser.script("return document.cookie");
    assert_eq!(
        cookie,
        json!(""),
        "HttpOnly: the page's scripts cannot read the token"
    );
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    // A new visit without the token still works: the cookie carries it.
    browser.call(
        "POST",
        "/url",
        Some(json!({ "url": format!("{base}?q=a%20photo") })),
    );
    browser.wait_for(
        "return document.querySelectorAll('.hit img').length === 3",
        "3 results on a second visit",
    );
}

/// Serves, on a port of its own, a page that frames `url`; returns the page's address.
fn framing_page(url: &str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = format!("<!doctype html><iframe id=f src='{url}' width=800 height=600></iframe>");
    std::thread::spawn(move || {
        // A few requests at most (the page, a favicon); the thread ends with the test process.
        for stream in listener.incoming().take(8).flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/")
}

#[test]
fn another_page_cannot_frame_the_search_page_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    write_jpeg(&photos.join("p0.jpg"), &photo(320, 240, 0));
    let index_dir = tmp.path().join("index");
    index(&photos, &index_dir, &[]);
    let server = serve(&index_dir, &[]);
    let (browser, _) = Browser::start();
    // A page of another origin (another port: a loopback page, since Chromium keeps public
    // pages from loopback altogether) that frames the search page, as a clickjacking page would.
    let framing = framing_page(&format!("http://{}/", server.addr));
    browser.call("POST", "/url", Some(json!({ "url": framing })));
    // Inside the frame: the search page's own elements, had it been displayed.
    let frame = browser.element("#f");
    browser.call(
        "POST",
        "/frame",
        Some(json!({"id": {"element-6066-11e4-a52e-4f735466cecf": frame}})),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Value::Null;
    while Instant::now() < deadline {
        seen = browser.script(
            "return {ready: document.readyState, search: !!document.getElementById('q'), at: location.href}",
        );
        if seen["ready"] == "complete" && seen["at"] != "about:blank" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(seen["ready"], "complete", "{seen}");
    assert_eq!(
        seen["search"], false,
        "the search page was shown inside another page: {seen}"
    );
}
