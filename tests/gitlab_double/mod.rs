//! A GitLab API double for tests: an in-process HTTP/1 server (hyper) that answers each
//! path from a queue of canned replies (the last one repeats), records every request, and
//! substitutes `{base}` in bodies and headers with its own URL (for `Link` headers).
//! Fixtures come from tests/fixtures/gitlab/api/*.json: `{"_source": <doc URL>, "body": …}`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(body: &Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

/// A fixture's `body` (tests/fixtures/gitlab/api/<name>.json).
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/gitlab/api/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        v["_source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://")),
        "{path}: no _source URL"
    );
    v["body"].clone()
}

#[derive(Default)]
struct State {
    /// `path` or `path?query` → replies; the last one repeats.
    routes: HashMap<String, Vec<Reply>>,
    requests: Vec<(String, HashMap<String, String>)>,
}

#[derive(Clone)]
pub struct Double {
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl Double {
    pub async fn start() -> Double {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let (st, b) = (state.clone(), base.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, b) = (st.clone(), b.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(st.clone(), b.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Double { base, state }
    }

    /// Serves `replies` (in order, the last repeating) for `route`: `/api/v4/…` or
    /// `/api/v4/…?query` (an exact query match wins over the path alone).
    pub fn route(&self, route: &str, replies: Vec<Reply>) -> &Self {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(route.into(), replies);
        self
    }

    /// Every request so far: `path?query` and its headers (lower-case names).
    pub fn requests(&self) -> Vec<(String, HashMap<String, String>)> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn hits(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .count()
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    base: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    use http_body_util::BodyExt;
    let path = req.uri().path().to_string();
    let mut full = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    // GraphQL: routed per project as `/api/graphql#<variables.path>[#<variables.after>]`
    // when such a route exists, else as `/api/graphql`.
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut keys = Vec::new();
    if let Ok(v) = serde_json::from_slice::<Value>(&body)
        && let Some(p) = v.pointer("/variables/path").and_then(Value::as_str)
    {
        let p = format!("{path}#{p}");
        if let Some(after) = v.pointer("/variables/after").and_then(Value::as_str) {
            keys.push(format!("{p}#{after}"));
        }
        keys.push(p.clone());
        full = p;
    }
    keys.push(full.clone());
    let reply = {
        let mut st = state.lock().unwrap();
        st.requests.push((full, headers));
        let key = keys
            .into_iter()
            .find(|k| st.routes.contains_key(k))
            .unwrap_or(path);
        match st.routes.get_mut(&key) {
            Some(q) if q.len() > 1 => Some(q.remove(0)),
            Some(q) => q.first().cloned(),
            None => None,
        }
    };
    let reply = reply.unwrap_or_else(|| Reply::status(404, r#"{"message":"404 Not Found"}"#));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(k, v.replace("{base}", &base));
    }
    Ok(resp
        .body(Full::new(Bytes::from(reply.body.replace("{base}", &base))))
        .unwrap())
}
