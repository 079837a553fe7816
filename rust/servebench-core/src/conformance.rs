//! For the engine crates' tests: check a real engine on the real model files against the
//! probabilities Python's ONNX Runtime wrote to reference.jsonl, and run the shared Open Inference
//! Protocol vectors (tests/vectors/v2.json) through the router over it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use tower::ServiceExt;

use crate::config::{MODELS_DIR_ENV, MODELS_ENV, PACKS_ENV};
use crate::contract::{FIELDS, MAX_BATCH, Passenger};
use crate::engine::{Engine, LoadRequest, ModelSpec, RecordModel};
use crate::http::{App, router};
use crate::preprocess::{N_FEATURES, Preprocessor};

/// The models folder and model list from `$SERVEBENCH_MODELS_DIR` and `$SERVEBENCH_MODELS`.
/// Panics, saying what to set, when either is missing: an engine test must not pass by skipping.
pub fn load_request_from_env(workers: usize) -> (PathBuf, LoadRequest) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let help = "The engine tests compare with Python's ONNX Runtime: set SERVEBENCH_MODELS_DIR \
                to a folder with preprocess.json, the .onnx models and reference.jsonl (outputs/models \
                after a run, or OUT/models after `.venv/bin/python -m servebench.quick_models OUT`) \
                and SERVEBENCH_MODELS to name=file pairs, e.g. \
                pytorch_onnx=pytorch.onnx,lightgbm_onnx=lightgbm.onnx";
    let (Some(dir), Some(list)) = (var(MODELS_DIR_ENV), var(MODELS_ENV)) else {
        panic!("{MODELS_DIR_ENV} and {MODELS_ENV} must be set. {help}");
    };
    let dir = PathBuf::from(dir);
    let mut models: Vec<ModelSpec> = list
        .split(',')
        .map(|pair| {
            let (name, file) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("{MODELS_ENV}={list:?} is not name=file,... {help}"));
            ModelSpec {
                name: name.trim().to_string(),
                path: dir.join(file.trim()),
            }
        })
        .collect();
    models.sort_by(|a, b| a.name.cmp(&b.name));
    for file in ["preprocess.json", "reference.jsonl"] {
        assert!(
            dir.join(file).is_file(),
            "{} is missing. {help}",
            dir.join(file).display()
        );
    }
    for model in &models {
        assert!(
            model.path.is_file(),
            "{} is missing. {help}",
            model.path.display()
        );
    }
    (dir, LoadRequest { models, workers })
}

/// A passenger, and Python's probability for each model of the request, in its order.
fn reference_rows(dir: &Path, models: &[ModelSpec]) -> Result<Vec<(Passenger, Vec<f64>)>, String> {
    let path = dir.join("reference.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |what: &dyn std::fmt::Display| format!("{}:{}: {what}", path.display(), n + 1);
        let doc: Map<String, Value> = serde_json::from_str(line).map_err(|e| bad(&e))?;
        // The line also holds ids, the label and the probabilities: keep the request fields.
        let fields: Map<String, Value> = FIELDS
            .iter()
            .filter_map(|&f| Some((f.to_string(), doc.get(f)?.clone())))
            .collect();
        let passenger: Passenger =
            serde_json::from_value(Value::Object(fields)).map_err(|e| bad(&e))?;
        passenger
            .validate()
            .map_err(|field| bad(&format!("{field} is out of range")))?;
        let expected = models
            .iter()
            .map(|m| doc.get(&m.name).and_then(Value::as_f64))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(&"no probability for one of the models"))?;
        rows.push((passenger, expected));
    }
    if rows.is_empty() {
        return Err(format!("{} has no rows", path.display()));
    }
    Ok(rows)
}

/// Run every reference row one at a time and all of them in batches through every model. Each
/// answer must be a probability, batch and single answers must agree, and each must be within
/// `tolerance` of Python's. Returns the number of rows and the largest difference from Python.
pub fn check_engine(
    engine: &dyn Engine,
    dir: &Path,
    models: &[ModelSpec],
    tolerance: f64,
) -> Result<(usize, f64), String> {
    let preprocessor = Preprocessor::load(&dir.join("preprocess.json"))?;
    let rows = reference_rows(dir, models)?;
    let passengers: Vec<Passenger> = rows.iter().map(|(p, _)| *p).collect();
    let features = preprocessor.transform(&passengers);
    let mut largest = 0.0f64;
    for (index, model) in models.iter().enumerate() {
        let name = &model.name;
        let info = engine
            .models()
            .get(index)
            .ok_or_else(|| format!("{name}: the engine has no model {index}"))?;
        let record = RecordModel::new(info, index).map_err(|e| format!("{name}: {e}"))?;
        let run = |chunk: &[f32]| {
            let rows = chunk.len() / N_FEATURES;
            record
                .predict(engine, chunk, rows)
                .map_err(|e| format!("{name}: {e}"))
        };
        let mut batch = Vec::with_capacity(rows.len());
        for chunk in features.chunks(MAX_BATCH * N_FEATURES) {
            batch.extend(run(chunk)?);
        }
        for (i, (passenger, expected)) in rows.iter().enumerate() {
            let single = run(&features[i * N_FEATURES..(i + 1) * N_FEATURES])?[0];
            if (single - batch[i]).abs() > 1e-6 {
                return Err(format!(
                    "{name}: {passenger:?}: single {single} but {} in a batch",
                    batch[i]
                ));
            }
            let (got, want) = (f64::from(single), expected[index]);
            largest = largest.max((got - want).abs());
            if (got - want).abs() > tolerance {
                return Err(format!(
                    "{name}: {passenger:?}: {got} here, {want} in Python (tolerance {tolerance})"
                ));
            }
        }
    }
    Ok((rows.len(), largest))
}

// --- The Open Inference Protocol ----------------------------------------------------------------

/// What a server serves over the Open Inference Protocol, as the engine tests load it.
#[derive(Debug, Clone)]
pub struct Served {
    pub dir: PathBuf,
    /// The record models (sorted by name), then the packs (sorted by name).
    pub request: LoadRequest,
    pub models: Vec<String>,
    pub packs: Vec<String>,
}

/// The record models of `$SERVEBENCH_MODELS` and the packs of `$SERVEBENCH_PACKS` (when unset,
/// every `packs/<name>/model.onnx` of the models folder, as the Python servers do), in
/// `$SERVEBENCH_MODELS_DIR`. Panics, saying what to set, when something is missing.
pub fn served_from_env(workers: usize) -> Served {
    let (dir, mut request) = load_request_from_env(workers);
    let help = "The V2 vectors need the example packs: `.venv/bin/python -m servebench.quick_models \
                OUT` writes them with the models (OUT/models/packs/NAME/model.onnx), and \
                SERVEBENCH_PACKS=$(.venv/bin/python -m servebench.registry packs OUT/models) \
                names them";
    let mut packs: Vec<(String, PathBuf)> = match std::env::var(PACKS_ENV) {
        Ok(list) => list
            .split(',')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| {
                let (name, file) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{PACKS_ENV}={list:?} is not name=file,... {help}"));
                (name.trim().to_string(), dir.join(file.trim()))
            })
            .collect(),
        Err(_) => std::fs::read_dir(dir.join("packs"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path().join("model.onnx"))
                    .filter(|path| path.is_file())
                    .filter_map(|path| {
                        let name = path.parent()?.file_name()?.to_str()?.to_string();
                        Some((name, path))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    packs.sort();
    assert!(
        !packs.is_empty(),
        "no model packs in {}. {help}",
        dir.display()
    );
    for (_, path) in &packs {
        assert!(path.is_file(), "{} is missing. {help}", path.display());
    }
    let models = request.models.iter().map(|m| m.name.clone()).collect();
    request
        .models
        .extend(packs.iter().map(|(name, path)| ModelSpec {
            name: name.clone(),
            path: path.clone(),
        }));
    Served {
        dir,
        request,
        models,
        packs: packs.into_iter().map(|(name, _)| name).collect(),
    }
}

/// The router over `engine`, serving what `served` names, with the folder's preprocess.json.
pub fn v2_router(engine: impl Engine, served: &Served) -> Result<Router, String> {
    let preprocessor = Preprocessor::load(&served.dir.join("preprocess.json"))?;
    let app = App::new(
        "rust-conformance",
        served.models.clone(),
        served.packs.clone(),
        Arc::new(engine),
        preprocessor,
    )?;
    Ok(router(Arc::new(app)))
}

/// tests/vectors/v2.json: the protocol's cases every stack is held to.
#[derive(Debug, Clone, Deserialize)]
pub struct V2Vectors {
    /// Numbers `x` against expected `y` within `tolerance * max(1, |y|)`.
    pub tolerance: f64,
    /// What `GET /v2/models/{name}` says of each example pack: name, inputs, outputs.
    pub metadata: BTreeMap<String, Value>,
    pub cases: Vec<V2Case>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct V2Case {
    pub name: String,
    pub method: String,
    pub path: String,
    /// Sent as JSON; `Some(Value::Null)` when the case's body is `null`.
    #[serde(default, deserialize_with = "present")]
    pub body: Option<Value>,
    /// Sent as it is, in place of a JSON body.
    #[serde(default)]
    pub raw: Option<String>,
    /// application/json unless the case gives another, or none when it gives null.
    #[serde(default = "json_type")]
    pub content_type: Option<String>,
    pub status: u16,
    /// What the error's message must name, each in single quotes.
    #[serde(default)]
    pub names: Vec<String>,
    /// A 200's outputs.
    #[serde(default)]
    pub outputs: Option<Vec<ExpectedOutput>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ExpectedOutput {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub data: Vec<f64>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn json_type() -> Option<String> {
    Some("application/json".into())
}

/// The shared vectors of the repository.
pub fn v2_vectors() -> V2Vectors {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/v2.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One answer of the router.
struct Answer {
    status: u16,
    content_type: String,
    server_timing: Option<String>,
    body: Vec<u8>,
}

async fn send(router: &Router, case: &V2Case) -> Result<Answer, String> {
    let content: Option<Vec<u8>> = match (&case.raw, &case.body) {
        (Some(raw), _) => Some(raw.clone().into_bytes()),
        (None, Some(body)) => Some(serde_json::to_vec(body).map_err(|e| e.to_string())?),
        (None, None) => None,
    };
    let mut builder = Request::builder()
        .method(case.method.as_str())
        .uri(&case.path);
    if let (Some(_), Some(content_type)) = (&content, &case.content_type) {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    let request = builder
        .body(content.map_or_else(Body::empty, Body::from))
        .map_err(|e| e.to_string())?;
    let Ok(response) = router.clone().oneshot(request).await;
    let text = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let content_type = text(header::CONTENT_TYPE).unwrap_or_default();
    let server_timing = text(header::HeaderName::from_static("server-timing"));
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        content_type,
        server_timing,
        body: body.to_vec(),
    })
}

fn close(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * want.abs().max(1.0)
}

/// A 200's body against the case: an inference's outputs (and id), or the body of a health,
/// readiness or metadata route.
fn check_answer(
    case: &V2Case,
    vectors: &V2Vectors,
    doc: &Value,
    values: bool,
) -> Result<(), String> {
    let segments: Vec<&str> = case.path.split('/').collect();
    let model = segments.get(3).copied().unwrap_or_default();
    if case.path.ends_with("/infer") {
        if doc["model_name"] != model {
            return Err(format!("model_name {}", doc["model_name"]));
        }
        let id = case.body.as_ref().and_then(|b| b.get("id")).cloned();
        if doc.get("id").cloned() != id {
            return Err(format!("id {:?}, expected {id:?}", doc.get("id")));
        }
        let got: Vec<ExpectedOutput> = serde_json::from_value(doc["outputs"].clone())
            .map_err(|e| format!("outputs: {e}: {}", doc["outputs"]))?;
        let want = case.outputs.as_deref().unwrap_or_default();
        let heads = |o: &[ExpectedOutput]| -> Vec<(String, String, Vec<i64>)> {
            o.iter()
                .map(|o| (o.name.clone(), o.datatype.clone(), o.shape.clone()))
                .collect()
        };
        if heads(&got) != heads(want) {
            return Err(format!(
                "outputs {:?}, expected {:?}",
                heads(&got),
                heads(want)
            ));
        }
        for (out, expected) in got.iter().zip(want) {
            if expected.datatype.starts_with("INT") && out.data.iter().any(|x| x.fract() != 0.0) {
                return Err(format!(
                    "output {}: {:?} are not integers",
                    out.name, out.data
                ));
            }
            let near = out.data.len() == expected.data.len()
                && out
                    .data
                    .iter()
                    .zip(&expected.data)
                    .all(|(&g, &w)| close(g, w, vectors.tolerance));
            if values && !near {
                return Err(format!(
                    "output {}: {:?}, expected {:?}",
                    out.name, out.data, expected.data
                ));
            }
        }
        return Ok(());
    }
    let expected = match case.path.as_str() {
        "/v2/health/live" => serde_json::json!({"live": true}),
        "/v2/health/ready" => serde_json::json!({"ready": true}),
        path if path.ends_with("/ready") => serde_json::json!({"name": model, "ready": true}),
        _ => {
            let want = vectors
                .metadata
                .get(model)
                .ok_or_else(|| format!("no metadata for {model} in the vectors"))?;
            let mut got = Map::new();
            for key in ["name", "inputs", "outputs"] {
                got.insert(key.into(), doc[key].clone());
            }
            if Value::Object(got.clone()) != *want {
                return Err(format!("metadata {}, expected {want}", Value::Object(got)));
            }
            if doc["platform"] != "onnxruntime_onnx" || !doc["versions"].is_array() {
                return Err(format!("platform or versions: {doc}"));
            }
            return Ok(());
        }
    };
    if *doc != expected {
        return Err(format!("{doc}, expected {expected}"));
    }
    Ok(())
}

async fn check_case(
    router: &Router,
    vectors: &V2Vectors,
    case: &V2Case,
    values: bool,
) -> Result<(), String> {
    let answer = send(router, case).await?;
    let text = String::from_utf8_lossy(&answer.body);
    let shown: String = text.chars().take(300).collect();
    if answer.status != case.status {
        return Err(format!(
            "status {}, expected {}: {shown}",
            answer.status, case.status
        ));
    }
    if !answer.content_type.starts_with("application/json") {
        return Err(format!("Content-Type {:?}: {shown}", answer.content_type));
    }
    let doc: Value = serde_json::from_slice(&answer.body).map_err(|e| format!("{e}: {shown}"))?;
    if case.status != 200 {
        let Some(message) = doc
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o["error"].as_str())
        else {
            return Err(format!("not an error body {{\"error\": \"...\"}}: {shown}"));
        };
        return match case
            .names
            .iter()
            .find(|n| !message.contains(&format!("'{n}'")))
        {
            Some(name) => Err(format!("{message:?} does not name '{name}'")),
            None => Ok(()),
        };
    }
    if case.path.ends_with("/infer") && answer.server_timing.is_none() {
        return Err("no Server-Timing".into());
    }
    check_answer(case, vectors, &doc, values)
}

/// Every case through the router, and `GET /v2/models/{name}` of every pack the vectors describe;
/// one line per failure. `values`: compare a 200's output values too (a real engine), not only
/// names, datatypes and shapes (a fake one).
pub async fn check_v2_vectors(router: &Router, vectors: &V2Vectors, values: bool) -> Vec<String> {
    let metadata = vectors.metadata.keys().map(|name| V2Case {
        name: format!("metadata of {name}"),
        method: "GET".into(),
        path: format!("/v2/models/{name}"),
        body: None,
        raw: None,
        content_type: None,
        status: 200,
        names: vec![],
        outputs: None,
    });
    let mut failures = Vec::new();
    for case in vectors.cases.iter().cloned().chain(metadata) {
        if let Err(e) = check_case(router, vectors, &case, values).await {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    failures
}

/// [`check_v2_vectors`] for a synchronous test.
pub fn check_v2_vectors_blocking(
    router: &Router,
    vectors: &V2Vectors,
    values: bool,
) -> Vec<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(check_v2_vectors(router, vectors, values))
}

// --- Models no engine may serve -----------------------------------------------------------------

/// Small ONNX graphs (written with the onnx package's helpers) whose inputs or outputs are not
/// tensors of the four served types: the model's name, the graph, and the tensor a refusal must
/// name. `zipmap`: a classifier's ZipMap output (a sequence of maps), which the refusal must say
/// to export with zipmap=False.
pub struct Unservable {
    pub name: &'static str,
    pub hex: &'static str,
    pub tensor: &'static str,
    pub zipmap: bool,
}

pub const UNSERVABLE: [Unservable; 3] = [
    // x FP32 [N, 2] -> ZipMap(classlabels_int64s=[0, 1]) -> seq(map(int64, tensor(float)))
    Unservable {
        name: "zipmap",
        hex: "08081201743a8e010a480a017812126f75747075745f70726f626162696c69747922065a69704d61702a\
              1b0a12636c6173736c6162656c735f696e7436347340004001a001073a0a61692e6f6e6e782e6d6c1206\
              7a69706d61705a140a0178120f0a0d080112090a0312014e0a02080262240a126f75747075745f70726f\
              626162696c697479120e220c0a0a2a08080712040a02080142040a00100d420e0a0a61692e6f6e6e782e\
              6d6c1001",
        tensor: "output_probability",
        zipmap: true,
    },
    // text tensor(string) [N] -> Identity -> same
    Unservable {
        name: "strings",
        hex: "08081201743a4b0a160a0474657874120473616d6522084964656e746974791207737472696e67735a13\
              0a0474657874120b0a09080812050a0312014e62130a0473616d65120b0a09080812050a0312014e4204\
              0a00100d",
        tensor: "text",
        zipmap: false,
    },
    // x FP32 [N] -> Greater(x, 0) -> flag tensor(bool) [N]
    Unservable {
        name: "flags",
        hex: "08081201743a580a180a01780a047a65726f1204666c61672207477265617465721205666c6167732a0e\
              100142047a65726f4a04000000005a100a0178120b0a09080112050a0312014e62130a04666c6167120b\
              0a09080912050a0312014e42040a00100d",
        tensor: "flag",
        zipmap: false,
    },
];

fn unhex(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            _ => (b | 0x20) - b'a' + 10,
        })
        .collect();
    digits
        .chunks(2)
        .map(|pair| pair[0] << 4 | pair[1])
        .collect()
}

/// Load each [`UNSERVABLE`] model with `load`, which must refuse it with a message naming the
/// model and the tensor (and zipmap=False for a ZipMap); one line per failure.
pub fn check_unservable<E>(load: impl Fn(&LoadRequest) -> Result<E, String>) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!(
        "servebench-unservable-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let mut failures = Vec::new();
    for model in &UNSERVABLE {
        let path = dir.join(format!("{}.onnx", model.name));
        std::fs::write(&path, unhex(model.hex)).expect("a scratch model");
        let request = LoadRequest {
            models: vec![ModelSpec {
                name: model.name.into(),
                path,
            }],
            workers: 1,
        };
        match load(&request) {
            Ok(_) => failures.push(format!("{}: loaded", model.name)),
            Err(message) => {
                let named = message.contains(&format!("model {}", model.name))
                    && message.contains(&format!("'{}'", model.tensor));
                if !named || message.contains("zipmap=False") != model.zipmap {
                    failures.push(format!("{}: {message}", model.name));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    failures
}
