//! The Open Inference Protocol's routes over fake engines: the shared vectors (statuses, the names
//! an error must give, the names, datatypes and shapes of an answer; the values need a real
//! engine, which the engine crates' tests run), and what the vectors do not show.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{FakeEngine, MODELS, PackEngine, Reply, app_with_packs, post, preprocess_json, send};
use serde_json::{Value, json};
use servebench_core::conformance::{self, V2Vectors};
use servebench_core::v2::INLINE_ELEMENTS;
use servebench_core::{
    Data, DataType, Engine, EngineError, ModelInfo, Tensor, TensorInfo, TensorView,
};

fn tensors(list: &Value) -> Vec<TensorInfo> {
    list.as_array()
        .expect("a list of tensors")
        .iter()
        .map(|t| {
            let datatype = DataType::from_name(t["datatype"].as_str().unwrap()).unwrap();
            let shape = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            TensorInfo::new(t["name"].as_str().unwrap(), datatype, shape)
        })
        .collect()
}

/// The packs the vectors describe, as graphs: names and infos.
fn packs(vectors: &V2Vectors) -> (Vec<String>, Vec<ModelInfo>) {
    vectors
        .metadata
        .iter()
        .map(|(name, doc)| {
            let info = ModelInfo {
                inputs: tensors(&doc["inputs"]),
                outputs: tensors(&doc["outputs"]),
            };
            (name.clone(), info)
        })
        .unzip()
}

/// The router over the Titanic models and the vectors' packs, answering zeros.
fn pack_app(vectors: &V2Vectors) -> Router {
    let (names, infos) = packs(vectors);
    app_with_packs(PackEngine::new(infos), &names, &preprocess_json())
}

fn two_inputs() -> ModelInfo {
    ModelInfo {
        inputs: vec![
            TensorInfo::new("a", DataType::Fp32, vec![-1, 3]),
            TensorInfo::new("b", DataType::Int64, vec![-1, 2]),
        ],
        outputs: vec![
            TensorInfo::new("score", DataType::Fp32, vec![-1, 1]),
            TensorInfo::new("winner", DataType::Int64, vec![-1]),
        ],
    }
}

/// The router over the Titanic models and `two_inputs` run by `engine`.
fn app_over(engine: impl Engine) -> Router {
    app_with_packs(engine, &["two_inputs".to_string()], &preprocess_json())
}

fn request() -> Value {
    json!({"inputs": [
        {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [0.5, -1.25, 2.0]},
        {"name": "b", "shape": [1, 2], "datatype": "INT64", "data": [3, -4]},
    ]})
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn json_post(uri: &str, body: &Value) -> Request<Body> {
    post(uri, Some("application/json"), body.to_string())
}

/// The protocol's error body: exactly `{"error": "..."}`; its message.
fn v2_error(reply: &Reply, status: StatusCode) -> String {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    let doc = reply.json();
    let keys: Vec<&String> = doc.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["error"], "{}", reply.body);
    doc["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_vector_over_a_fake_engine() {
    let vectors = conformance::v2_vectors();
    assert!(vectors.cases.len() >= 40, "{} cases", vectors.cases.len());
    let failures = conformance::check_v2_vectors(&pack_app(&vectors), &vectors, false).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The checks themselves: wrong answers planted in the vectors are caught, each once.
#[tokio::test]
async fn the_checks_catch_wrong_answers() {
    let vectors = conformance::v2_vectors();
    let app = pack_app(&vectors);
    let mut planted = vectors.clone();
    let find = |name: &str| {
        planted
            .cases
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name:?}"))
    };
    let (status, names, shape) = (
        find("a negative dimension"),
        find("an input missing"),
        find("two rows, nested data"),
    );
    planted.cases[status].status = 422;
    planted.cases[names].names = vec!["a".into()];
    planted.cases[shape].outputs.as_mut().unwrap()[0].shape = vec![3, 1];
    planted
        .metadata
        .get_mut("fixed")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("name".into(), json!("fixed2"));
    let failures = conformance::check_v2_vectors(&app, &planted, false).await;
    let got: Vec<&str> = failures
        .iter()
        .map(|f| f.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        got,
        [
            "two rows, nested data",
            "an input missing",
            "a negative dimension",
            "metadata of fixed"
        ],
        "{failures:#?}"
    );
    // With values compared, the fake engine's zeros are caught wherever Python's answer is not
    // zero: every 200 of an inference but the one whose outputs are all zero.
    let failures = conformance::check_v2_vectors(&app, &vectors, true).await;
    let wrong_values = vectors
        .cases
        .iter()
        .filter(|c| {
            c.outputs
                .as_ref()
                .is_some_and(|o| o.iter().any(|o| o.data.iter().any(|&x| x != 0.0)))
        })
        .count();
    assert!(wrong_values >= 10, "{wrong_values}");
    assert_eq!(failures.len(), wrong_values, "{failures:#?}");
    assert!(
        failures.iter().all(|f| f.contains(": output ")),
        "{failures:#?}"
    );
}

#[tokio::test]
async fn health_and_metadata() {
    let app = app_over(PackEngine::new([two_inputs()]));
    let cases = [
        ("/v2/health/live", json!({"live": true})),
        ("/v2/health/ready", json!({"ready": true})),
        (
            "/v2/models/two_inputs/ready",
            json!({"name": "two_inputs", "ready": true}),
        ),
        (
            "/v2/models/pytorch_onnx/ready",
            json!({"name": "pytorch_onnx", "ready": true}),
        ),
        (
            "/v2/models/lightgbm_onnx",
            json!({
                "name": "lightgbm_onnx", "versions": [], "platform": "onnxruntime_onnx",
                "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 6]}],
                "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1]}],
            }),
        ),
    ];
    for (uri, want) in cases {
        let reply = send(app.clone(), get(uri)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        assert_eq!(reply.json(), want, "{uri}");
        assert!(reply.headers.contains_key("server-timing"), "{uri}");
    }
    let doc = send(app.clone(), get("/v2")).await.json();
    assert_eq!(doc["name"], "rust-test");
    assert!(doc["version"].is_string());
    assert_eq!(doc["extensions"], json!([]));
    // HEAD answers like GET, as axum does.
    let head = Request::head("/v2/health/live")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(app, head).await.status, StatusCode::OK);
}

#[tokio::test]
async fn packs_are_not_the_record_apis() {
    let app = app_over(PackEngine::new([two_inputs()]));
    let health = send(app.clone(), get("/health")).await.json();
    assert_eq!(health["models"], json!(MODELS));
    let passenger =
        r#"{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}"#;
    let reply = send(
        app,
        post("/predict/two_inputs", Some("application/json"), passenger),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_paths_models_and_methods() {
    let app = app_over(PackEngine::new([two_inputs()]));
    for uri in [
        "/v2/",
        "/v2/models",
        "/v2/models/",
        "/v2/nope",
        "/v2/models/two_inputs/x",
    ] {
        let reply = send(app.clone(), get(uri)).await;
        v2_error(&reply, StatusCode::NOT_FOUND);
    }
    let long = "m".repeat(500);
    for uri in [
        "/v2/models/nope".to_string(),
        "/v2/models/nope/ready".to_string(),
        format!("/v2/models/{long}"),
    ] {
        let message = v2_error(&send(app.clone(), get(&uri)).await, StatusCode::NOT_FOUND);
        assert!(
            message.starts_with("unknown model 'm") || message.contains("'nope'"),
            "{message}"
        );
        assert!(message.len() < 300, "{message}");
    }
    // The model is checked first: an unknown one is a 404 whatever the body.
    let reply = send(
        app.clone(),
        post("/v2/models/nope/infer", Some("text/plain"), "x"),
    )
    .await;
    assert!(v2_error(&reply, StatusCode::NOT_FOUND).contains("'nope'"));
    for (method, uri, allow) in [
        ("GET", "/v2/models/two_inputs/infer", "POST"),
        ("PUT", "/v2/models/two_inputs/infer", "POST"),
        ("POST", "/v2/models/two_inputs", "GET,HEAD"),
        ("POST", "/v2/health/live", "GET,HEAD"),
        ("DELETE", "/v2", "GET,HEAD"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let reply = send(app.clone(), request).await;
        v2_error(&reply, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.headers[header::ALLOW], allow, "{method} {uri}");
    }
}

#[tokio::test]
async fn content_types_and_the_body_limit() {
    let app = app_over(PackEngine::new([two_inputs()]));
    let body = request().to_string();
    let uri = "/v2/models/two_inputs/infer";
    for content_type in [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
    ] {
        let reply = send(app.clone(), post(uri, content_type, body.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{content_type:?}: {}",
            reply.body
        );
    }
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let reply = send(app.clone(), post(uri, Some(content_type), body.clone())).await;
        v2_error(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    // Over 1 MiB: a 413 with the protocol's body, and the next request is served.
    let rows = 1 << 17;
    let big = json!({"inputs": [
        {"name": "a", "shape": [rows, 3], "datatype": "FP32", "data": vec![0.5; 3 * rows]},
        {"name": "b", "shape": [rows, 2], "datatype": "INT64", "data": vec![1; 2 * rows]},
    ]})
    .to_string();
    assert!(big.len() > 1 << 20);
    let reply = send(app.clone(), post(uri, None, big)).await;
    v2_error(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    let reply = send(app, post(uri, None, body)).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn an_answer_holds_the_outputs_asked_for_and_the_id() {
    let app = app_over(PackEngine::new([two_inputs()]));
    let uri = "/v2/models/two_inputs/infer";
    let reply = send(app.clone(), json_post(uri, &request())).await;
    assert!(reply.headers.contains_key("server-timing"));
    assert_eq!(
        reply.json(),
        json!({"model_name": "two_inputs", "outputs": [
            {"name": "score", "datatype": "FP32", "shape": [1, 1], "data": [0.0]},
            {"name": "winner", "datatype": "INT64", "shape": [1], "data": [0]},
        ]})
    );
    let mut asked = request();
    asked["id"] = json!("r-1");
    asked["outputs"] = json!([{"name": "winner"}]);
    let doc = send(app.clone(), json_post(uri, &asked)).await.json();
    assert_eq!(doc["id"], "r-1");
    assert_eq!(doc["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(doc["outputs"][0]["name"], "winner");
    asked["outputs"] = json!([{"name": "winner"}, {"name": "winner"}]);
    let reply = send(app, json_post(uri, &asked)).await;
    assert!(v2_error(&reply, StatusCode::BAD_REQUEST).contains("'winner'"));
}

/// pytorch_onnx over the protocol gives /predict's probabilities for the same features.
#[tokio::test]
async fn a_record_model_over_the_protocol() {
    let app = app_over(PackEngine::new([two_inputs()]));
    let body = json!({"inputs": [{"name": "features", "shape": [2, 6], "datatype": "FP32",
        "data": [[3, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]}]});
    let reply = send(app, json_post("/v2/models/pytorch_onnx/infer", &body)).await;
    assert_eq!(
        reply.json()["outputs"],
        json!([{"name": "probability", "datatype": "FP32", "shape": [2], "data": [0.25, 0.75]}])
    );
}

/// Many rows go to the blocking pool and come back the same.
#[tokio::test]
async fn a_large_request_is_answered() {
    let app = app_over(PackEngine::new([two_inputs()]));
    let rows = INLINE_ELEMENTS;
    let body = json!({"inputs": [
        {"name": "a", "shape": [rows, 3], "datatype": "FP32", "data": vec![0.5; 3 * rows]},
        {"name": "b", "shape": [rows, 2], "datatype": "INT64", "data": vec![1; 2 * rows]},
    ]});
    let reply = send(app, json_post("/v2/models/two_inputs/infer", &body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", &reply.body[..200]);
    assert_eq!(reply.json()["outputs"][1]["shape"], json!([rows]));
}

/// An engine that fails, answers NaN, or answers the wrong type.
struct Faulty(&'static str);

impl Engine for Faulty {
    fn models(&self) -> &[ModelInfo] {
        static INFOS: std::sync::LazyLock<Vec<ModelInfo>> = std::sync::LazyLock::new(|| {
            let mut infos = FakeEngine.models().to_vec();
            infos.push(two_inputs());
            infos
        });
        &INFOS
    }

    fn infer(
        &self,
        _: usize,
        _: &[TensorView<'_>],
        outputs: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        let tensor = |data| Tensor {
            shape: vec![1, 1],
            data,
        };
        match self.0 {
            "fails" => Err(EngineError::new("Gather: index 7 is out of bounds")),
            "nan" => Ok(vec![tensor(Data::F32(vec![f32::NAN]))]),
            "type" => Ok(vec![tensor(Data::F64(vec![1.0]))]),
            _ => Ok(outputs
                .iter()
                .map(|_| tensor(Data::F32(vec![1.0])))
                .collect()),
        }
    }
}

#[tokio::test]
async fn engine_faults_are_never_a_dead_server() {
    let mut body = request();
    body["outputs"] = json!([{"name": "score"}]);
    let uri = "/v2/models/two_inputs/infer";
    let reply = send(app_over(Faulty("fails")), json_post(uri, &body)).await;
    let message = v2_error(&reply, StatusCode::BAD_REQUEST);
    assert_eq!(message, "model 'two_inputs' cannot run on these inputs");
    let reply = send(app_over(Faulty("nan")), json_post(uri, &body)).await;
    let message = v2_error(&reply, StatusCode::BAD_REQUEST);
    assert!(message.starts_with("output 'score': "), "{message}");
    // A wrong type is the engine's fault, not the client's.
    let reply = send(app_over(Faulty("type")), json_post(uri, &body)).await;
    v2_error(&reply, StatusCode::INTERNAL_SERVER_ERROR);
}

/// Every request of the vectors with an input's data replaced by hostile JSON: a 400 or 200,
/// never a panic.
#[tokio::test]
async fn hostile_data() {
    let app = app_over(PackEngine::new([two_inputs()]));
    let uri = "/v2/models/two_inputs/infer";
    let deep = format!("{}0.5{}", "[".repeat(5000), "]".repeat(5000));
    for data in [
        deep.as_str(),
        "[1e400, 0, 0]",
        "[NaN, 0, 0]",
        "[-0.0, 0, 0]",
        "[[], [[]], 1, 2, 3]",
        r#"["\ud800", 0, 0]"#,
        "[1,2,3",
        "{\"a\": 1}",
        "\"abc\"",
    ] {
        let body = format!(
            r#"{{"inputs": [{{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": {data}}},
               {{"name": "b", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}}]}}"#
        );
        let reply = send(app.clone(), post(uri, None, body)).await;
        assert!(
            matches!(reply.status.as_u16(), 200 | 400),
            "{data:.40}: {} {}",
            reply.status,
            reply.body
        );
        if reply.status == StatusCode::BAD_REQUEST {
            v2_error(&reply, StatusCode::BAD_REQUEST);
        }
    }
}
