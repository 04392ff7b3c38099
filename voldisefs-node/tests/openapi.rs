//! The OpenAPI document (`src/openapi.json`, served at `/api/v1/openapi.json`) against the
//! routes the node really serves and the answers it really gives.
//!
//! Live answers are checked with a small validator for the JSON Schema keywords the document
//! uses (`$ref`, `type`, `required`, `properties`, `items`, `enum`, `const`, `minimum`,
//! `minLength`; `pattern` is left to schemathesis in CI). It is stricter than the document in
//! one way on purpose: an object property the document does not declare is an error (unless
//! its schema says `additionalProperties: true`), so a field added to a response type without
//! documenting it fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;
use voldisefs_node::{ApiToken, Node, NodeConfig};

/// The document exactly as the binary serves it.
const DOCUMENT: &str = include_str!("../src/openapi.json");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("src/openapi.json is not valid JSON")
}

/// Every (METHOD, path) operation the document describes.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("`paths` is an object") {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// The document's error codes are exactly the ones the handlers answer with (one enum,
/// `voldisefs_node::ApiErrorCode`, shared with clients), in the same order.
#[test]
fn the_documented_error_codes_are_the_api_error_codes() {
    let doc = document();
    let documented: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode has an enum")
        .iter()
        .map(|v| v.as_str().expect("codes are strings"))
        .collect();
    let served: Vec<&str> = voldisefs_node::ApiErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(documented, served);
}

/// The node for a local `$ref` such as `#/components/schemas/Error`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("$ref {reference} is not local to the document"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("$ref {reference} points at nothing"))
}

/// `node` with its `$ref` (if any) followed, repeatedly.
fn deref<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        node = resolve(doc, reference);
    }
    node
}

/// Every `$ref` anywhere in `node`.
fn all_refs<'a>(node: &'a Value, out: &mut Vec<&'a str>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => all_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_refs(v, out)),
        _ => {}
    }
}

/// Validates `value` against `schema` (see the module docs for the keywords understood),
/// appending one line per violation to `errors`.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        validate(doc, resolve(doc, reference), value, at, errors);
    }
    if let Some(expected) = schema.get("const") {
        if value != expected {
            errors.push(format!("{at}: {value} is not the constant {expected}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            other => panic!("{at}: bad `type` {other} in the document"),
        };
        let fits = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            other => panic!("{at}: unknown type {other} in the document"),
        });
        if !fits {
            errors.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if n < min {
            errors.push(format!("{at}: {n} is below the minimum {min}"));
        }
    }
    if let (Some(min), Some(s)) = (
        schema.get("minLength").and_then(Value::as_u64),
        value.as_str(),
    ) {
        if (s.chars().count() as u64) < min {
            errors.push(format!("{at}: {s:?} is shorter than {min}"));
        }
    }
    if let Some(object) = value.as_object() {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    errors.push(format!("{at}: required property `{name}` is missing"));
                }
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, item) in object {
                match properties.get(name) {
                    Some(sub) => validate(doc, sub, item, &format!("{at}.{name}"), errors),
                    None if schema["additionalProperties"] == true => {}
                    None => errors.push(format!(
                        "{at}: property `{name}` is not described in the document"
                    )),
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            validate(doc, items, item, &format!("{at}[{i}]"), errors);
        }
    }
}

/// The media type without its parameters, lowercase: `text/plain; version=0.0.4` -> `text/plain`.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// An answer as the document must describe it.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    json: Option<Value>,
}

impl Answer {
    /// The `error` code of a JSON error answer.
    fn code(&self) -> &str {
        self.json
            .as_ref()
            .and_then(|v| v["error"].as_str())
            .unwrap_or("")
    }
}

/// Checks that the document describes `response` to operation (`method`, `path`): its status
/// code, content type, required headers and (for JSON) body. Returns the answer.
async fn conform(doc: &Value, method: &str, path: &str, response: reqwest::Response) -> Answer {
    let what = format!("{method} {path}");
    let operation = &doc["paths"][path][method.to_lowercase()];
    assert!(operation.is_object(), "{what}: not in the document");
    let status = response.status();
    let documented = operation["responses"]
        .get(status.as_str())
        .map(|r| deref(doc, r))
        .unwrap_or_else(|| panic!("{what}: status {status} is not documented"));
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();

    if let Some(described) = documented.get("headers").and_then(Value::as_object) {
        for (name, header) in described {
            let header = deref(doc, header);
            let value = headers.get(name.as_str());
            if header["required"] == true {
                assert!(value.is_some(), "{what} {status}: header {name} is missing");
            }
            if let (Some(value), "integer") =
                (value, header["schema"]["type"].as_str().unwrap_or(""))
            {
                assert!(
                    value.to_str().unwrap().parse::<u64>().is_ok(),
                    "{what} {status}: header {name} is not an integer: {value:?}"
                );
            }
        }
    }

    let mut json = None;
    if let Some(content) = documented.get("content").and_then(Value::as_object) {
        let got = headers
            .get(reqwest::header::CONTENT_TYPE)
            .unwrap_or_else(|| panic!("{what} {status}: no Content-Type"))
            .to_str()
            .unwrap();
        let (media_type, media) = content
            .iter()
            .find(|(documented, _)| essence(documented) == essence(got))
            .unwrap_or_else(|| {
                panic!(
                    "{what} {status}: Content-Type {got} is not documented ({:?})",
                    content.keys().collect::<Vec<_>>()
                )
            });
        if essence(media_type) == "application/json" {
            let value: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{what} {status}: body is not JSON ({e})"));
            let mut errors = Vec::new();
            validate(doc, &media["schema"], &value, "body", &mut errors);
            assert!(
                errors.is_empty(),
                "{what} {status}: the body does not conform to the document:\n  {}\nbody: {:.600}",
                errors.join("\n  "),
                value.to_string()
            );
            json = Some(value);
        }
    } else {
        assert!(body.is_empty(), "{what} {status}: undocumented body");
    }
    Answer { status, body, json }
}

fn base(node: &Node) -> String {
    format!("http://{}", node.http_addr().unwrap())
}

#[test]
fn the_document_describes_exactly_the_served_routes() {
    let doc = document();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1"), "OpenAPI version {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let served: BTreeSet<(String, String)> = voldisefs_node::api_routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let documented = documented_operations(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "the document and the router disagree:\n  served but not documented: {undocumented:?}\n  documented but not served: {not_served:?}"
    );

    let mut refs = Vec::new();
    all_refs(&doc, &mut refs);
    for reference in refs {
        resolve(&doc, reference);
    }

    let mut operation_ids = BTreeSet::new();
    for (method, path) in &documented {
        let what = format!("{method} {path}");
        let item = &doc["paths"][path];
        let operation = &item[method.to_lowercase()];
        let id = operation["operationId"].as_str().expect("an operationId");
        assert!(operation_ids.insert(id), "{what}: operationId {id} twice");
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what}: no success answer"
        );
        // Path parameters are declared.
        let declared: Vec<&Value> = item["parameters"]
            .as_array()
            .into_iter()
            .chain(operation["parameters"].as_array())
            .flatten()
            .map(|p| deref(&doc, p))
            .collect();
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(|c| c == '{' || c == '}');
            assert!(
                declared
                    .iter()
                    .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true),
                "{what}: path parameter {name} is not declared"
            );
        }
        // The token guards exactly the /api/ routes: the others are public.
        if path.starts_with("/api/") {
            assert!(
                operation.get("security").is_none(),
                "{what}: overrides security"
            );
            assert!(
                responses.contains_key("401"),
                "{what}: no 401 for the token"
            );
        } else {
            assert_eq!(
                operation["security"],
                serde_json::json!([]),
                "{what}: not public"
            );
        }
    }
    // The bearer token is optional: no security requirement at all satisfies the default.
    let security = doc["security"].as_array().unwrap();
    assert!(security.contains(&serde_json::json!({})));
    assert!(security.contains(&serde_json::json!({"apiToken": []})));
    assert_eq!(
        doc["components"]["securitySchemes"]["apiToken"]["scheme"],
        "bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_serves_this_document() {
    let node = Node::start(common::config()).await.unwrap();
    let res = reqwest::get(format!("{}/api/v1/openapi.json", base(&node)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(essence(&content_type), "application/json", "{content_type}");
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, document());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_answers_conform_to_the_document() {
    let doc = &document();
    let nodes = common::network(2, 2).await;
    let http = reqwest::Client::new();
    let (a, b) = (base(&nodes[0]), base(&nodes[1]));
    const FILES: &str = "/api/v1/files";
    const FILE: &str = "/api/v1/files/{id}";

    for path in [
        "/",
        "/favicon.ico",
        "/healthz",
        "/metrics",
        "/api/v1/openapi.json",
    ] {
        let res = http.get(format!("{a}{path}")).send().await.unwrap();
        let answer = conform(doc, "GET", path, res).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    let res = http
        .get(format!("{a}/api/v1/network"))
        .send()
        .await
        .unwrap();
    let net = conform(doc, "GET", "/api/v1/network", res)
        .await
        .json
        .unwrap();
    assert_eq!(net["peers"].as_array().unwrap().len(), 1, "{net}");

    let bytes = common::data(2 * common::CHUNK + 5, 9);
    let upload = |password: Option<&str>, name: Option<&str>| {
        let mut request = http.post(format!("{a}{FILES}")).body(bytes.clone());
        if let Some(password) = password {
            request = request.header("X-Voldisefs-Password", password);
        }
        if let Some(name) = name {
            request = request.header("X-Voldisefs-Filename", name);
        }
        request.send()
    };
    let answer = conform(
        doc,
        "POST",
        FILES,
        upload(Some("pw"), Some("a%20b.txt")).await.unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let receipt = answer.json.unwrap();
    assert_eq!(receipt["chunks"], 3);
    let id = receipt["id"].as_str().unwrap().to_string();
    for (password, name, status, code) in [
        (None, None, 401, "password_required"),
        (Some(""), None, 401, "password_required"),
        (Some("pw"), Some(&*"a".repeat(5000)), 400, "bad_request"),
    ] {
        let answer = conform(doc, "POST", FILES, upload(password, name).await.unwrap()).await;
        assert_eq!((answer.status.as_u16(), answer.code()), (status, code));
    }
    let res = http.get(format!("{a}{FILES}")).send().await.unwrap();
    let list = conform(doc, "GET", FILES, res).await.json.unwrap();
    assert_eq!(list["files"][0]["id"], id.as_str());

    let res = http
        .get(format!("{b}{FILES}/{id}"))
        .header("X-Voldisefs-Password", "pw")
        .send()
        .await
        .unwrap();
    let answer = conform(doc, "GET", FILE, res).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, bytes);

    let unknown = "AB".repeat(32);
    for method in ["GET", "DELETE"] {
        for (target, password, status, code) in [
            (id.as_str(), Some("nope"), 401, "wrong_password"),
            (id.as_str(), None, 401, "password_required"),
            ("not-an-id", Some("pw"), 400, "bad_request"),
            (&id[1..], Some("pw"), 400, "bad_request"),
            (unknown.as_str(), Some("pw"), 404, "not_found"),
        ] {
            let mut request = http.request(method.parse().unwrap(), format!("{b}{FILES}/{target}"));
            if let Some(password) = password {
                request = request.header("X-Voldisefs-Password", password);
            }
            let answer = conform(doc, method, FILE, request.send().await.unwrap()).await;
            assert_eq!(
                (answer.status.as_u16(), answer.code()),
                (status, code),
                "{method} {target}"
            );
        }
    }

    let delete = || {
        http.delete(format!("{b}{FILES}/{id}"))
            .header("X-Voldisefs-Password", "pw")
            .send()
    };
    let answer = conform(doc, "DELETE", FILE, delete().await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json.unwrap()["id"], id.as_str());
    let answer = conform(doc, "DELETE", FILE, delete().await.unwrap()).await;
    assert_eq!((answer.status.as_u16(), answer.code()), (404, "not_found"));
    common::shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_exactly_the_operations_the_document_says() {
    let doc = &document();
    let node = Node::start(NodeConfig {
        api_token: Some(ApiToken::new("t0ken").unwrap()),
        ..common::config()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let some_id = "ab".repeat(32);
    for (method, path) in documented_operations(doc) {
        let public =
            doc["paths"][&path][method.to_lowercase()]["security"] == serde_json::json!([]);
        let url = format!(
            "{}{}",
            base(&node),
            path.replace("{id}", &some_id).replace("{name}", "page.js")
        );
        for (token, code) in [(None, "token_required"), (Some("wrong"), "bad_token")] {
            let mut request = http
                .request(method.parse().unwrap(), &url)
                .header("X-Voldisefs-Password", "pw");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let answer = conform(doc, &method, &path, request.send().await.unwrap()).await;
            if path.contains("{ticket}") {
                // Public, and an unknown ticket is simply not found (not a token refusal).
                assert!(public, "{method} {path} is public");
                assert_eq!((answer.status.as_u16(), answer.code()), (404, "not_found"));
            } else if public {
                assert_eq!(answer.status, StatusCode::OK, "{method} {path} is public");
            } else {
                assert_eq!(
                    (answer.status, answer.code()),
                    (StatusCode::UNAUTHORIZED, code),
                    "{method} {path}"
                );
            }
        }
    }
    let res = http
        .get(format!("{}/api/v1/openapi.json", base(&node)))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(
        conform(doc, "GET", "/api/v1/openapi.json", res)
            .await
            .status,
        200
    );
    assert!(node.files().is_empty());
    node.shutdown().await;
}

/// Every error under `/api/` is a JSON error object, including the ones axum's extractors
/// produce before a handler runs (a path that is not valid UTF-8 once percent-decoded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_id_escape_is_a_json_error() {
    let doc = &document();
    let node = Node::start(common::config()).await.unwrap();
    let http = reqwest::Client::new();
    for method in ["GET", "DELETE"] {
        let res = http
            .request(
                method.parse().unwrap(),
                format!("{}/api/v1/files/%FF", base(&node)),
            )
            .header("X-Voldisefs-Password", "pw")
            .send()
            .await
            .unwrap();
        let answer = conform(doc, method, "/api/v1/files/{id}", res).await;
        assert_eq!(
            (answer.status.as_u16(), answer.code()),
            (400, "bad_request")
        );
    }
    node.shutdown().await;
}

/// `value` validated against the document's schema `name`, with every property the schema
/// declares present in it (the samples below fill every optional field), so the shared types
/// of `voldisefs_node::api` and the document's schemas name the same fields both ways.
fn check_schema(doc: &Value, name: &str, value: &Value) -> Vec<String> {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name} in the document");
    let mut errors = Vec::new();
    validate(doc, schema, value, name, &mut errors);
    if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object())
    {
        for property in properties.keys() {
            if !object.contains_key(property) {
                errors.push(format!(
                    "{name}: the document's property `{property}` is no field of the type"
                ));
            }
        }
    }
    errors
}

/// A value of a contract type as JSON, checked to read back as itself (the types are what the
/// handlers send and what clients read).
fn round_trip<T>(value: &T) -> Value
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_value(value).unwrap();
    let back: T = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(&back, value);
    json
}

/// Every JSON body type of `voldisefs_node::api` against its schema in the document.
#[test]
fn the_api_types_match_the_documented_schemas() {
    use voldisefs_node::api::*;
    use voldisefs_node::crypto::ReadKey;
    use voldisefs_node::proto::{FileId, NodeId};

    let doc = &document();
    let id = FileId::digest(b"a file");
    let key = ReadKey::from_bytes([7; 32]);
    let peer = |n: u8| PeerInfo {
        id: NodeId::random(),
        addr: format!("127.0.0.1:41{n:02}").parse().unwrap(),
    };
    let mut errors = Vec::new();
    for code in ApiErrorCode::ALL {
        let body = round_trip(&ApiErrorBody::new(*code, "what went wrong"));
        errors.extend(check_schema(doc, "Error", &body));
    }
    errors.extend(check_schema(doc, "Health", &round_trip(&Health::ok())));
    for kind in [IndexKind::File, IndexKind::Collection] {
        let list = FileList {
            files: vec![IndexEntry {
                id,
                name: "notes.txt".into(),
                kind,
                size: 5,
                chunks: 1,
                files: Some(1),
                created: 1_700_000_000,
                expires: Some(1_800_000_000),
            }],
        };
        errors.extend(check_schema(doc, "FileList", &round_trip(&list)));
        let entry = &round_trip(&list)["files"][0];
        errors.extend(check_schema(doc, "IndexEntry", entry));
    }
    let deleted = DeleteReceipt {
        id,
        deleted: true,
        chunks: 3,
    };
    errors.extend(check_schema(doc, "DeleteReceipt", &round_trip(&deleted)));
    let request = ObjectDeleteRequest {
        delete_key: "cd".repeat(32),
        ids: vec!["ab".repeat(32)],
        everywhere: true,
        spread: 6,
    };
    errors.extend(check_schema(
        doc,
        "ObjectDeleteRequest",
        &round_trip(&request),
    ));
    let nodes = ObjectDeleteReceipt { nodes: 2 };
    errors.extend(check_schema(
        doc,
        "ObjectDeleteReceipt",
        &round_trip(&nodes),
    ));
    for kind in [TicketKind::File, TicketKind::Archive] {
        let ticket = Ticket {
            ticket: "ab".repeat(32),
            url: format!("/download/{}", "ab".repeat(32)),
            kind,
            name: "notes.txt".into(),
            expires_in: 60,
        };
        errors.extend(check_schema(doc, "Ticket", &round_trip(&ticket)));
    }
    let info = NodeInfo {
        chunk_size: 1 << 20,
        kdf_m_kib: 65_536,
        kdf_t: 3,
        kdf_p: 1,
        replicas: 3,
        redundancy: "replicas:3".into(),
        live_nodes: 3,
        default_expiry: Some(86_400),
        max_expiry: Some(604_800),
        max_object: 1 << 20,
        max_batch_bytes: 64 << 20,
        max_batch_objects: 1024,
        max_delete_ids: 4096,
    };
    errors.extend(check_schema(doc, "NodeInfo", &round_trip(&info)));
    let status = NetworkStatus {
        node: peer(0),
        state: "running",
        peers: vec![PeerStatus {
            id: peer(1).id,
            addr: peer(1).addr,
            state: "alive",
            demoted: true,
            failures: 2,
            stored_bytes: Some(4096),
            stored_objects: Some(4),
        }],
        security: "keyed",
        store: StoreStatus {
            chunks: 4,
            bytes: 4096,
            capacity: 1 << 30,
            tombstones: 1,
        },
        repair: RepairStatus {
            backlog: 1,
            pushed: 2,
            dropped: 3,
            failed: 4,
            sweeps: 5,
        },
    };
    let json = round_trip(&status);
    errors.extend(check_schema(doc, "NetworkStatus", &json));
    errors.extend(check_schema(doc, "PeerInfo", &json["node"]));
    errors.extend(check_schema(doc, "PeerStatus", &json["peers"][0]));
    errors.extend(check_schema(doc, "StoreStatus", &json["store"]));
    errors.extend(check_schema(doc, "RepairStatus", &json["repair"]));

    // Bodies whose types live beside the code that makes them.
    let stored = ObjectReceipt {
        stored: 2,
        copies: 2,
        replicas: 3,
    };
    let json = round_trip(&stored);
    errors.extend(check_schema(doc, "ObjectReceipt", &json));
    let receipt = UploadReceipt {
        id,
        size: 5,
        chunks: 1,
        created: 1_700_000_000,
        replicas: 3,
        copies: 3,
        redundancy: "replicas:3".into(),
        expires: Some(1_800_000_000),
        read_key: key.clone(),
    };
    let created = Created {
        answer: &receipt,
        read_key: Some(key.to_hex().as_str().to_owned()),
    };
    let json = serde_json::to_value(&created).unwrap();
    errors.extend(check_schema(doc, "UploadReceipt", &json));
    let listing = CollectionListing {
        id,
        name: "photos".into(),
        size: 5,
        created: 1_700_000_000,
        files: vec![CollectionFile {
            path: "a/b.jpg".into(),
            size: 5,
            id,
            read: key.clone(),
        }],
        read_key: Some(key.clone()),
    };
    let created = Created {
        answer: &listing,
        read_key: Some(key.to_hex().as_str().to_owned()),
    };
    let json = serde_json::to_value(&created).unwrap();
    errors.extend(check_schema(doc, "Collection", &json));
    errors.extend(check_schema(doc, "CollectionFile", &json["files"][0]));
    errors.extend(check_schema(
        doc,
        "CollectionFile",
        &round_trip(&listing.files[0]),
    ));
    assert!(errors.is_empty(), "\n  {}", errors.join("\n  "));
}
