//! `FakeVault`: a loopback stand-in for HashiCorp Vault (or OpenBao), served in the test process on a
//! thread of its own, speaking the real wire shapes of the parts Castellan uses:
//! - `GET /v1/{mount}/data/{path}`: the KV version 2 read (`data.data` and `data.metadata`), with
//!   `X-Vault-Token` checked first (403 `{"errors":["permission denied"]}`), then the path (404
//!   `{"errors":[]}`); `X-Vault-Namespace` selects the namespace (none is the root namespace)
//! - `POST /v1/auth/approle/login` with `{"role_id","secret_id"}`: a new token in `auth.client_token`,
//!   or 400 `{"errors":["invalid role or secret ID"]}`
//! - `POST /v1/auth/token/revoke-self`: 204, the token no longer works
//!
//! The test changes values with [`FakeVault::put`] / [`FakeVault::set`] (each write is a new version)
//! and stops the server with [`FakeVault::stop`] (connections are refused from then on).

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Map, Value, json};

/// The token that reads everything.
pub const ROOT_TOKEN: &str = "hvs.fake-root-7c1e4b9a2d";
/// The one AppRole the fake knows.
pub const ROLE_ID: &str = "5f0c9d1e-role-id-fake";
pub const SECRET_ID: &str = "a81f2c3d-secret-id-fake";

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub namespace: Option<String>,
}

struct Version {
    data: Map<String, Value>,
    version: u64,
}

#[derive(Default)]
struct State {
    tokens: BTreeSet<String>,
    issued: u64,
    /// By (namespace, mount, path); the root namespace is "".
    secrets: BTreeMap<(String, String, String), Version>,
    seen: Vec<SeenRequest>,
    next_request: u64,
}

pub struct FakeVault {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    state: Arc<Mutex<State>>,
    server: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

impl FakeVault {
    /// Starts a fake that accepts [`ROOT_TOKEN`] and the AppRole [`ROLE_ID`] / [`SECRET_ID`].
    pub fn start() -> FakeVault {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("the bound address"));
        let state = Arc::new(Mutex::new(State::default()));
        lock(&state).tokens.insert(ROOT_TOKEN.to_string());
        let shared = web::Data::from(Arc::clone(&state));
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server =
                    HttpServer::new(move || App::new().app_data(shared.clone()).default_service(web::to(answer)))
                        .workers(1)
                        .disable_signals()
                        .listen(listener)
                        .expect("serve on the listener")
                        .run();
                let _ = sender.send(server.handle());
                let _ = server.await;
            });
        });
        let server = receiver.recv().expect("the fake Vault started");
        FakeVault { url, state, server: Some(server), thread: Some(thread) }
    }

    /// Writes `data` as the next version of `mount/path` in the root namespace; returns the version.
    pub fn put(&self, mount: &str, path: &str, data: Value) -> u64 {
        self.put_in_namespace("", mount, path, data)
    }

    pub fn put_in_namespace(&self, namespace: &str, mount: &str, path: &str, data: Value) -> u64 {
        let Value::Object(data) = data else { panic!("KV data is an object: {data}") };
        let mut state = lock(&self.state);
        let key = (namespace.to_string(), mount.to_string(), path.to_string());
        let version = state.secrets.get(&key).map_or(1, |current| current.version + 1);
        state.secrets.insert(key, Version { data, version });
        version
    }

    /// Changes one key of `mount/path` (root namespace) in a new version, as `vault kv patch` does.
    pub fn set(&self, mount: &str, path: &str, key: &str, value: Value) -> u64 {
        let mut data = {
            let state = lock(&self.state);
            let current = state.secrets.get(&(String::new(), mount.to_string(), path.to_string()));
            current.map(|current| current.data.clone()).unwrap_or_default()
        };
        data.insert(key.to_string(), value);
        self.put(mount, path, Value::Object(data))
    }

    /// Every request so far, oldest first.
    pub fn seen(&self) -> Vec<SeenRequest> {
        lock(&self.state).seen.clone()
    }

    /// AppRole tokens issued and not revoked.
    pub fn live_approle_tokens(&self) -> usize {
        lock(&self.state).tokens.iter().filter(|token| token.as_str() != ROOT_TOKEN).count()
    }

    /// Stops serving; connections are refused afterwards.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            // The stop future needs a runtime; a thread of its own keeps this callable from async tests.
            let _ = std::thread::spawn(move || actix_web::rt::System::new().block_on(server.stop(false))).join();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FakeVault {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn header(request: &HttpRequest, name: &str) -> Option<String> {
    request.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string)
}

fn errors(status: u16, messages: &[&str]) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("a status code");
    HttpResponse::build(status).json(json!({ "errors": messages }))
}

async fn answer(request: HttpRequest, body: Bytes, state: web::Data<Mutex<State>>) -> HttpResponse {
    let token = header(&request, "x-vault-token");
    let namespace = header(&request, "x-vault-namespace");
    let mut state = lock(&state);
    state.seen.push(SeenRequest {
        method: request.method().to_string(),
        path: request.path().to_string(),
        token: token.clone(),
        namespace: namespace.clone(),
    });
    state.next_request += 1;
    let request_id = format!("00000000-0000-4000-8000-{:012}", state.next_request);
    let path = request.path().strip_prefix("/v1/").unwrap_or_default().to_string();
    match (request.method().as_str(), path.as_str()) {
        ("POST", "auth/approle/login") => login(&mut state, &body, &request_id),
        ("POST", "auth/token/revoke-self") => match token.filter(|token| state.tokens.contains(token)) {
            Some(token) => {
                state.tokens.remove(&token);
                HttpResponse::NoContent().finish()
            }
            None => errors(403, &["permission denied"]),
        },
        ("GET", kv_path) => {
            if !token.is_some_and(|token| state.tokens.contains(&token)) {
                return errors(403, &["permission denied"]);
            }
            let Some((mount, path)) = kv_path.split_once("/data/") else { return errors(404, &[]) };
            let key = (namespace.unwrap_or_default(), mount.to_string(), path.to_string());
            match state.secrets.get(&key) {
                Some(current) => HttpResponse::Ok().json(json!({
                    "request_id": request_id,
                    "lease_id": "",
                    "renewable": false,
                    "lease_duration": 0,
                    "data": {
                        "data": current.data,
                        "metadata": {
                            "created_time": format!("2026-01-01T00:{:02}:00.000000000Z", current.version % 60),
                            "custom_metadata": null,
                            "deletion_time": "",
                            "destroyed": false,
                            "version": current.version,
                        },
                    },
                    "wrap_info": null,
                    "warnings": null,
                    "auth": null,
                    "mount_type": "kv",
                })),
                None => errors(404, &[]),
            }
        }
        _ => errors(405, &["unsupported operation"]),
    }
}

fn login(state: &mut State, body: &[u8], request_id: &str) -> HttpResponse {
    let credentials: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if credentials["role_id"] != ROLE_ID || credentials["secret_id"] != SECRET_ID {
        return errors(400, &["invalid role or secret ID"]);
    }
    state.issued += 1;
    let token = format!("hvs.fake-approle-{:08}", state.issued);
    state.tokens.insert(token.clone());
    HttpResponse::Ok().json(json!({
        "request_id": request_id,
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": null,
        "wrap_info": null,
        "warnings": null,
        "auth": {
            "client_token": token,
            "accessor": format!("fake-accessor-{:08}", state.issued),
            "policies": ["castellan", "default"],
            "token_policies": ["castellan", "default"],
            "metadata": { "role_name": "castellan" },
            "lease_duration": 2_764_800,
            "renewable": true,
            "entity_id": "",
            "token_type": "service",
            "orphan": true,
            "mfa_requirement": null,
            "num_uses": 0,
        },
        "mount_type": "",
    }))
}
