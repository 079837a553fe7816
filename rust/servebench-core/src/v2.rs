//! The Open Inference Protocol (KServe V2, REST with JSON tensors) on the same engine as the record
//! API: every model the server loaded, the record API's and the packs, with whatever inputs and
//! outputs its graph declares (docs/api.md, "The Open Inference Protocol").
//!
//! An inference request is read in two passes. serde derive reads the body into
//! [`InferenceRequest`], leaving each input's `data` as raw JSON text (a 400 when the body is not
//! JSON or not an inference request); then each input is checked against the model's graph input
//! (datatype, rank, every dimension, the element count computed with `checked_mul`), and only
//! then is its `data` parsed, flattened, straight into a vector of the input's element type,
//! whose capacity is bounded by the length of that text. Every refusal is a 400 whose message
//! names the input or output in single quotes; an unknown model is a 404.

use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::contract::{BodyError, MAX_BODY_BYTES, read_body};
use crate::engine::{
    Data, DataType, DataView, Engine, EngineError, ModelInfo, Tensor, TensorInfo, TensorView,
    element_count,
};
use crate::http::App;

/// What `GET /v2/models/{name}` reports as the platform: every model is an ONNX graph.
pub const PLATFORM: &str = "onnxruntime_onnx";
/// Client-chosen text (a name, a datatype) is echoed in a message up to this many characters.
pub const ECHO_LIMIT: usize = 200;
/// An inference whose inputs hold more values than this runs on tokio's blocking pool, so that a
/// long one (a tree ensemble on many rows) does not hold a worker that other requests need. A
/// record API batch (1024 rows of 6) still runs inline.
pub const INLINE_ELEMENTS: usize = 8192;

/// The protocol's paths: `/v2` and everything under it. Their 404 and 405 answers carry the
/// protocol's error body.
pub fn is_v2_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/infer", post(infer))
}

// --- Errors -------------------------------------------------------------------------------------

/// A refusal: its status and the message of its body, `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Error {
    pub status: StatusCode,
    pub message: String,
}

impl V2Error {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl fmt::Display for V2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response()
    }
}

/// Client-chosen text in single quotes, cut at [`ECHO_LIMIT`] characters.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(ECHO_LIMIT) {
        None => format!("'{text}'"),
        Some((cut, _)) => format!("'{}…'", &text[..cut]),
    }
}

fn unknown_model(name: &str) -> V2Error {
    V2Error::new(
        StatusCode::NOT_FOUND,
        format!("unknown model {}", quoted(name)),
    )
}

// --- Health and metadata ------------------------------------------------------------------------

#[derive(Serialize)]
struct ServerMetadata<'a> {
    name: &'a str,
    version: &'static str,
    extensions: [&'static str; 0],
}

async fn server_metadata(State(app): State<Arc<App>>) -> Response {
    Json(ServerMetadata {
        name: app.id(),
        version: env!("CARGO_PKG_VERSION"),
        extensions: [],
    })
    .into_response()
}

#[derive(Serialize)]
struct Live {
    live: bool,
}

#[derive(Serialize)]
struct Ready {
    ready: bool,
}

async fn live() -> Response {
    Json(Live { live: true }).into_response()
}

/// The server listens only once every model is loaded and warmed up.
async fn ready() -> Response {
    Json(Ready { ready: true }).into_response()
}

/// The model named in the path: its name and engine index, or a 404. Extracted before the body.
struct Model {
    name: String,
    index: usize,
}

impl FromRequestParts<Arc<App>> for Model {
    type Rejection = V2Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, V2Error> {
        let name = Path::<String>::from_request_parts(parts, app)
            .await
            .map(|Path(name)| name)
            .unwrap_or_default();
        match app.v2_model(&name) {
            Some(index) => Ok(Model { name, index }),
            None => Err(unknown_model(&name)),
        }
    }
}

#[derive(Serialize)]
struct TensorMetadata<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [i64],
}

impl<'a> From<&'a TensorInfo> for TensorMetadata<'a> {
    fn from(t: &'a TensorInfo) -> Self {
        Self {
            name: &t.name,
            datatype: t.datatype.name(),
            shape: &t.shape,
        }
    }
}

#[derive(Serialize)]
struct ModelMetadata<'a> {
    name: &'a str,
    versions: [&'static str; 0],
    platform: &'static str,
    inputs: Vec<TensorMetadata<'a>>,
    outputs: Vec<TensorMetadata<'a>>,
}

async fn model_metadata(State(app): State<Arc<App>>, model: Model) -> Response {
    let info = &app.engine().models()[model.index];
    Json(ModelMetadata {
        name: &model.name,
        versions: [],
        platform: PLATFORM,
        inputs: info.inputs.iter().map(TensorMetadata::from).collect(),
        outputs: info.outputs.iter().map(TensorMetadata::from).collect(),
    })
    .into_response()
}

#[derive(Serialize)]
struct ModelReady<'a> {
    name: &'a str,
    ready: bool,
}

async fn model_ready(model: Model) -> Response {
    Json(ModelReady {
        name: &model.name,
        ready: true,
    })
    .into_response()
}

// --- The request --------------------------------------------------------------------------------

/// `POST /v2/models/{name}/infer`. Keys the protocol does not define are ignored, as KServe's
/// own server does; those it defines must have their JSON types (a shape of integers, an id that
/// is a string).
#[derive(Debug, Deserialize)]
pub struct InferenceRequest<'a> {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    #[serde(borrow)]
    pub inputs: Vec<RequestInput<'a>>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

#[derive(Debug, Deserialize)]
pub struct RequestInput<'a> {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    /// The values, flat or nested, as JSON text: read once the shape is known to fit.
    #[serde(borrow)]
    pub data: &'a RawValue,
}

#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<Parameters>,
}

/// A `parameters` object: checked to be an object, its contents ignored (none is defined here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameters;

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Parameters;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parameters, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Parameters)
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// The body as an inference request, or the 400 saying why it is not one.
pub fn parse_request(body: &[u8]) -> Result<InferenceRequest<'_>, V2Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(V2Error::bad(
            "the body is empty: an inference request is a JSON object",
        ));
    }
    let not_json = |e: serde_json::Error| V2Error::bad(format!("the body is not JSON: {e}"));
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let e = e.into_inner();
        match e.classify() {
            // The field at fault, as a path into the body: `inputs[0].shape[1]: invalid type...`
            serde_json::error::Category::Data if path != "." => {
                V2Error::bad(format!("{path}: {e}"))
            }
            serde_json::error::Category::Data => {
                V2Error::bad(format!("the body is not an inference request: {e}"))
            }
            _ => not_json(e),
        }
    })?;
    deserializer.end().map_err(not_json)?;
    Ok(request)
}

/// The media type rule: none, or application/json (parameters such as charset allowed). Unlike
/// the record API, a client may send no Content-Type at all.
pub fn check_media_type(headers: &HeaderMap) -> Result<(), V2Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ok = value.to_str().is_ok_and(|text| {
        let essence = text.split(';').next().unwrap_or_default().trim();
        essence.is_empty() || essence.eq_ignore_ascii_case("application/json")
    });
    if ok {
        Ok(())
    } else {
        Err(V2Error::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json, or absent",
        ))
    }
}

fn body_error(error: BodyError) -> V2Error {
    match error {
        BodyError::TooLarge => V2Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body exceeds {MAX_BODY_BYTES} bytes"),
        ),
        // Nobody will read the answer.
        BodyError::Unreadable => V2Error::bad("could not read the request body"),
    }
}

// --- Inputs -------------------------------------------------------------------------------------

/// The request's inputs as the model's graph inputs, in graph order, or the 400 naming the first
/// input at fault: an input the model does not have, one given twice, one missing, then each
/// input's datatype, shape and values (see [`decode`]).
pub fn decode_inputs(
    model: &str,
    info: &ModelInfo,
    inputs: &[RequestInput<'_>],
) -> Result<Vec<Tensor>, V2Error> {
    let mut given: Vec<Option<&RequestInput<'_>>> = vec![None; info.inputs.len()];
    for item in inputs {
        let Some(i) = info.inputs.iter().position(|t| t.name == item.name) else {
            let takes: Vec<String> = info.inputs.iter().map(|t| quoted(&t.name)).collect();
            return Err(V2Error::bad(format!(
                "input {}: model {} has no such input ({})",
                quoted(&item.name),
                quoted(model),
                takes.join(", ")
            )));
        };
        if given[i].replace(item).is_some() {
            return Err(V2Error::bad(format!(
                "input {}: given twice",
                quoted(&item.name)
            )));
        }
    }
    info.inputs
        .iter()
        .zip(given)
        .map(|(tensor, item)| match item {
            Some(item) => decode(tensor, item),
            None => Err(V2Error::bad(format!(
                "input {}: missing; model {} needs every input",
                quoted(&tensor.name),
                quoted(model)
            ))),
        })
        .collect()
}

/// One input as the tensor the graph input takes: its datatype, its rank, every dimension
/// (positive, and equal where the graph fixes it), the element count against the data (the
/// product computed without overflow, before anything is allocated), and every value (a number
/// of the datatype, within its range: no string, boolean or null, no fraction for an integer).
pub fn decode(tensor: &TensorInfo, given: &RequestInput<'_>) -> Result<Tensor, V2Error> {
    let input = format!("input {}", quoted(&tensor.name));
    if given.datatype != tensor.datatype.name() {
        return Err(V2Error::bad(format!(
            "{input}: datatype {}; the model takes {}",
            quoted(&given.datatype),
            tensor.datatype
        )));
    }
    let shape = checked_shape(&input, tensor, &given.shape)?;
    let Some(count) = element_count(&shape) else {
        return Err(V2Error::bad(format!(
            "{input}: shape {:?} has more elements than any request can hold",
            given.shape
        )));
    };
    let raw = given.data.get();
    if !raw.starts_with('[') {
        return Err(V2Error::bad(format!(
            "{input}: data must be an array of numbers, flat or nested"
        )));
    }
    let data = match tensor.datatype {
        DataType::Fp32 => Data::F32(read_data(&input, tensor, raw, &given.shape, count)?),
        DataType::Fp64 => Data::F64(read_data(&input, tensor, raw, &given.shape, count)?),
        DataType::Int64 => Data::I64(read_data(&input, tensor, raw, &given.shape, count)?),
        DataType::Int32 => Data::I32(read_data(&input, tensor, raw, &given.shape, count)?),
    };
    Ok(Tensor { shape, data })
}

/// The shape as dimensions, once it has the graph input's rank and every dimension is positive
/// and equal to the graph's where the graph fixes it.
fn checked_shape(input: &str, tensor: &TensorInfo, shape: &[i64]) -> Result<Vec<usize>, V2Error> {
    let want = &tensor.shape;
    if shape.len() != want.len() {
        return Err(V2Error::bad(format!(
            "{input}: shape {shape:?} has rank {}; the model takes {want:?}",
            shape.len()
        )));
    }
    if shape.iter().any(|&d| d < 0) {
        return Err(V2Error::bad(format!(
            "{input}: shape {shape:?} has a negative dimension"
        )));
    }
    if shape.contains(&0) {
        return Err(V2Error::bad(format!(
            "{input}: shape {shape:?} is empty; send at least one row"
        )));
    }
    if let Some(axis) = (0..shape.len()).find(|&a| want[a] >= 0 && shape[a] != want[a]) {
        return Err(V2Error::bad(format!(
            "{input}: shape {shape:?}; the model takes {want:?}, dimension {axis} fixed to {}",
            want[axis]
        )));
    }
    shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            V2Error::bad(format!(
                "{input}: shape {shape:?} has more elements than any request can hold"
            ))
        })
}

/// A JSON number as serde_json read it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    I(i64),
    U(u64),
    F(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::I(v) => write!(f, "{v}"),
            Self::U(v) => write!(f, "{v}"),
            // Debug: 1.5, 1e39; never a long run of digits.
            Self::F(v) => write!(f, "{v:?}"),
        }
    }
}

/// Why a number is not a value of the datatype.
enum Refusal {
    Fraction,
    Range,
}

/// An element type of a tensor, read from a JSON number.
trait Element: Copy {
    const DATATYPE: DataType;
    fn from_number(n: Number) -> Result<Self, Refusal>;
}

/// Exact integral doubles in `[low, high)`, given as powers of two so that the bounds are exact.
fn integral(v: f64, low: f64, high: f64) -> Result<f64, Refusal> {
    if v.fract() != 0.0 {
        Err(Refusal::Fraction)
    } else if (low..high).contains(&v) {
        Ok(v)
    } else {
        Err(Refusal::Range)
    }
}

impl Element for f32 {
    const DATATYPE: DataType = DataType::Fp32;
    fn from_number(n: Number) -> Result<Self, Refusal> {
        // Through a double, as Python reads a number before numpy narrows it.
        let v = match n {
            Number::I(v) => v as f64,
            Number::U(v) => v as f64,
            Number::F(v) => v,
        };
        if v.abs() <= f64::from(f32::MAX) {
            Ok(v as f32)
        } else {
            Err(Refusal::Range)
        }
    }
}

impl Element for f64 {
    const DATATYPE: DataType = DataType::Fp64;
    fn from_number(n: Number) -> Result<Self, Refusal> {
        // serde_json reads only finite doubles (1e400 is not JSON to it).
        Ok(match n {
            Number::I(v) => v as f64,
            Number::U(v) => v as f64,
            Number::F(v) => v,
        })
    }
}

impl Element for i64 {
    const DATATYPE: DataType = DataType::Int64;
    fn from_number(n: Number) -> Result<Self, Refusal> {
        match n {
            Number::I(v) => Ok(v),
            Number::U(v) => i64::try_from(v).map_err(|_| Refusal::Range),
            // An integral number written as a float (3.0, 1e3) is an integer, as JSON Schema
            // has it.
            Number::F(v) => integral(v, -(2f64.powi(63)), 2f64.powi(63)).map(|v| v as i64),
        }
    }
}

impl Element for i32 {
    const DATATYPE: DataType = DataType::Int32;
    fn from_number(n: Number) -> Result<Self, Refusal> {
        match n {
            Number::I(v) => i32::try_from(v).map_err(|_| Refusal::Range),
            Number::U(v) => i32::try_from(v).map_err(|_| Refusal::Range),
            Number::F(v) => integral(v, -(2f64.powi(31)), 2f64.powi(31)).map(|v| v as i32),
        }
    }
}

/// What reading the data found: the values while they fit the shape and are all sound, the
/// number of leaves, and the first leaf of each kind of fault.
struct Sink<T> {
    expected: usize,
    count: usize,
    values: Vec<T>,
    not_a_number: Option<(usize, &'static str)>,
    fraction: Option<(usize, Number)>,
    out_of_range: Option<(usize, Number)>,
}

impl<T: Element> Sink<T> {
    fn sound(&self) -> bool {
        self.not_a_number.is_none() && self.fraction.is_none() && self.out_of_range.is_none()
    }

    fn number(&mut self, n: Number) {
        let i = self.count;
        self.count += 1;
        match T::from_number(n) {
            Ok(v) if i < self.expected && self.sound() => self.values.push(v),
            Ok(_) => {}
            Err(Refusal::Fraction) => {
                self.fraction.get_or_insert((i, n));
            }
            Err(Refusal::Range) => {
                self.out_of_range.get_or_insert((i, n));
            }
        }
    }

    fn other(&mut self, kind: &'static str) {
        self.not_a_number.get_or_insert((self.count, kind));
        self.count += 1;
    }
}

/// Every leaf of the (possibly nested) data into the sink, row-major. Recursion follows the
/// JSON's nesting, which serde_json bounds (128 levels).
struct Leaves<'s, T>(&'s mut Sink<T>);

impl<'de, T: Element> DeserializeSeed<'de> for Leaves<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Element> Visitor<'de> for Leaves<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("numbers, or arrays of them")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.number(Number::I(v));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.number(Number::U(v));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.number(Number::F(v));
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.0.other("a boolean");
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.0.other("a string");
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.other("null");
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.other("null");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.0.other("an object");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Leaves(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// The data of an input whose shape holds `count` elements, as values of `T`: refused when it
/// holds another number of leaves, a leaf that is not a number, a fraction for an integer type
/// or a number out of the type's range (in that order, as the Python servers check).
fn read_data<T: Element>(
    input: &str,
    tensor: &TensorInfo,
    raw: &str,
    shape: &[i64],
    count: usize,
) -> Result<Vec<T>, V2Error> {
    // Every value takes a character and a separator, so the text bounds what can fit.
    let capacity = count.min(raw.len() / 2 + 1);
    let mut sink = Sink {
        expected: count,
        count: 0,
        values: Vec::with_capacity(capacity),
        not_a_number: None,
        fraction: None,
        out_of_range: None,
    };
    let mut deserializer = serde_json::Deserializer::from_str(raw);
    Leaves(&mut sink)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|e| V2Error::bad(format!("{input}: data: {e}")))?;
    let datatype = tensor.datatype;
    if sink.count != count {
        return Err(V2Error::bad(format!(
            "{input}: shape {shape:?} has {count} elements, data has {}",
            sink.count
        )));
    }
    if let Some((i, kind)) = sink.not_a_number {
        return Err(V2Error::bad(format!(
            "{input}: data[{i}] is {kind}, not a number of {datatype}"
        )));
    }
    if let Some((i, n)) = sink.fraction {
        return Err(V2Error::bad(format!(
            "{input}: data[{i}] = {n} is not an integer, as {datatype} needs"
        )));
    }
    if let Some((i, n)) = sink.out_of_range {
        return Err(V2Error::bad(format!(
            "{input}: data[{i}] = {n} is out of the range of {datatype}"
        )));
    }
    debug_assert_eq!(T::DATATYPE, datatype);
    Ok(sink.values)
}

// --- Outputs ------------------------------------------------------------------------------------

/// The outputs asked for, as indices into the graph's, in the order asked; all of them, in graph
/// order, when the request names none.
pub fn wanted_outputs(
    model: &str,
    info: &ModelInfo,
    outputs: Option<&[RequestOutput]>,
) -> Result<Vec<usize>, V2Error> {
    let outputs = outputs.unwrap_or_default();
    if outputs.is_empty() {
        return Ok((0..info.outputs.len()).collect());
    }
    let mut wanted = Vec::with_capacity(outputs.len());
    for item in outputs {
        let Some(i) = info.outputs.iter().position(|t| t.name == item.name) else {
            let has: Vec<String> = info.outputs.iter().map(|t| quoted(&t.name)).collect();
            return Err(V2Error::bad(format!(
                "output {}: model {} has no such output ({})",
                quoted(&item.name),
                quoted(model),
                has.join(", ")
            )));
        };
        if wanted.contains(&i) {
            return Err(V2Error::bad(format!(
                "output {}: asked for twice",
                quoted(&item.name)
            )));
        }
        wanted.push(i);
    }
    Ok(wanted)
}

/// Values as a JSON array.
struct Values<'a>(DataView<'a>);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            DataView::F32(v) => serializer.collect_seq(v),
            DataView::F64(v) => serializer.collect_seq(v),
            DataView::I64(v) => serializer.collect_seq(v),
            DataView::I32(v) => serializer.collect_seq(v),
        }
    }
}

#[derive(Serialize)]
struct ResponseOutput<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    data: Values<'a>,
}

#[derive(Serialize)]
struct InferenceResponse<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<ResponseOutput<'a>>,
}

// --- Inference ----------------------------------------------------------------------------------

/// `POST /v2/models/{name}/infer`: the model (404), the Content-Type (415), the body (413 over
/// the limit, 400 when not an inference request), the inputs and outputs against the graph
/// (400), then the engine.
async fn infer(
    State(app): State<Arc<App>>,
    model: Model,
    request: Request,
) -> Result<Response, V2Error> {
    check_media_type(request.headers())?;
    let body = read_body(request.into_body()).await.map_err(body_error)?;
    let info = &app.engine().models()[model.index];
    let parsed = parse_request(&body)?;
    let inputs = decode_inputs(&model.name, info, &parsed.inputs)?;
    let wanted = wanted_outputs(&model.name, info, parsed.outputs.as_deref())?;
    let id = parsed.id;
    let outputs = run(&app, model.index, inputs, &wanted).await.map_err(|e| {
        eprintln!("{}: inference failed on {}: {e}", app.id(), model.name);
        V2Error::bad(format!(
            "model {} cannot run on these inputs",
            quoted(&model.name)
        ))
    })?;
    let mut response = Vec::with_capacity(outputs.len());
    for (output, &i) in outputs.iter().zip(&wanted) {
        let declared = &info.outputs[i];
        if output.data.datatype() != declared.datatype
            || element_count(&output.shape) != Some(output.data.len())
        {
            eprintln!(
                "{}: {} answered {} {:?} with {} values for output '{}' {}",
                app.id(),
                model.name,
                output.data.datatype(),
                output.shape,
                output.data.len(),
                declared.name,
                declared.datatype
            );
            return Err(V2Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "inference failed",
            ));
        }
        if !output.data.view().is_finite() {
            // JSON has no NaN or infinity: the inputs drove the model past its numbers.
            return Err(V2Error::bad(format!(
                "output {}: the model's answer to these inputs is not a finite number",
                quoted(&declared.name)
            )));
        }
        response.push(ResponseOutput {
            name: &declared.name,
            datatype: declared.datatype.name(),
            shape: &output.shape,
            data: Values(output.data.view()),
        });
    }
    Ok(Json(InferenceResponse {
        model_name: &model.name,
        id: id.as_deref(),
        outputs: response,
    })
    .into_response())
}

/// The engine's answer: inline for a small request, on the blocking pool for a large one.
async fn run(
    app: &Arc<App>,
    model: usize,
    inputs: Vec<Tensor>,
    wanted: &[usize],
) -> Result<Vec<Tensor>, EngineError> {
    let elements: usize = inputs.iter().map(|t| t.data.len()).sum();
    if elements <= INLINE_ELEMENTS {
        let views: Vec<TensorView<'_>> = inputs.iter().map(Tensor::view).collect();
        return infer_checked(app.engine(), model, &views, wanted);
    }
    let app = Arc::clone(app);
    let wanted = wanted.to_vec();
    tokio::task::spawn_blocking(move || {
        let views: Vec<TensorView<'_>> = inputs.iter().map(Tensor::view).collect();
        infer_checked(app.engine(), model, &views, &wanted)
    })
    .await
    .map_err(|e| EngineError(format!("the inference task failed: {e}")))?
}

fn infer_checked(
    engine: &dyn Engine,
    model: usize,
    inputs: &[TensorView<'_>],
    wanted: &[usize],
) -> Result<Vec<Tensor>, EngineError> {
    let outputs = engine.infer(model, inputs, wanted)?;
    if outputs.len() != wanted.len() {
        return Err(EngineError(format!(
            "{} outputs for {} asked",
            outputs.len(),
            wanted.len()
        )));
    }
    Ok(outputs)
}

/// Run a model once on zeros, every dynamic dimension 1, through [`Engine::warm_up`]: first runs
/// allocate and pick kernels, which no request should pay for.
pub fn warm_up(engine: &dyn Engine, model: usize) -> Result<(), EngineError> {
    let info = crate::engine::model_info(engine, model)?;
    let inputs: Vec<Tensor> = info
        .inputs
        .iter()
        .map(|t| {
            let shape: Vec<usize> = t
                .shape
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(1))
                .collect();
            match element_count(&shape) {
                Some(n) if n <= 1 << 24 => Ok(Tensor {
                    data: Data::zeros(t.datatype, n),
                    shape,
                }),
                _ => Err(EngineError(format!(
                    "input '{}' {:?} is too large to warm up on",
                    t.name, t.shape
                ))),
            }
        })
        .collect::<Result<_, _>>()?;
    let views: Vec<TensorView<'_>> = inputs.iter().map(Tensor::view).collect();
    let wanted: Vec<usize> = (0..info.outputs.len()).collect();
    engine.warm_up(model, &views, &wanted).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ModelInfo {
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

    fn inputs(body: &str) -> Result<Vec<Tensor>, V2Error> {
        let request = parse_request(body.as_bytes())?;
        decode_inputs("m", &info(), &request.inputs)
    }

    const B: &str = r#"{"name": "b", "shape": [1, 2], "datatype": "INT64", "data": [3, -4]}"#;

    /// The request with input `a` as given and input `b` fine.
    fn with_a(a: &str) -> Result<Vec<Tensor>, V2Error> {
        inputs(&format!(r#"{{"inputs": [{a}, {B}]}}"#))
    }

    fn a(shape: &str, data: &str) -> String {
        format!(r#"{{"name": "a", "shape": {shape}, "datatype": "FP32", "data": {data}}}"#)
    }

    fn refusal(result: Result<Vec<Tensor>, V2Error>) -> String {
        let error = result.expect_err("a refusal");
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{error}");
        error.message
    }

    #[test]
    fn flat_and_nested_data_read_the_same() {
        let flat = with_a(&a("[2, 3]", "[1, 2, 3, 4, 5, 6.5]")).unwrap();
        let nested = with_a(&a("[2, 3]", "[[1, 2, 3], [4, 5, 6.5]]")).unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat[0].shape, [2, 3]);
        assert_eq!(flat[0].data, Data::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]));
        assert_eq!(flat[1].data, Data::I64(vec![3, -4]));
        // Deeper nesting flattens too, and the order of the inputs does not matter.
        let deep = inputs(&format!(
            r#"{{"inputs": [{B}, {}]}}"#,
            a("[2, 3]", "[[[1], [2, 3]], [[4, 5], [6.5]]]")
        ))
        .unwrap();
        assert_eq!(deep, flat);
    }

    #[test]
    fn every_fault_names_its_input() {
        let cases = [
            (
                a("[1, 3]", "[1, 2]"),
                "input 'a': shape [1, 3] has 3 elements, data has 2",
            ),
            (
                a("[1, 3]", "[1, 2, 3, 4]"),
                "input 'a': shape [1, 3] has 3 elements, data has 4",
            ),
            (
                a("[3]", "[1, 2, 3]"),
                "input 'a': shape [3] has rank 1; the model takes [-1, 3]",
            ),
            (
                a("[-1, 3]", "[1, 2, 3]"),
                "input 'a': shape [-1, 3] has a negative dimension",
            ),
            (
                a("[0, 3]", "[]"),
                "input 'a': shape [0, 3] is empty; send at least one row",
            ),
            (
                a("[1, 4]", "[1, 2, 3, 4]"),
                "input 'a': shape [1, 4]; the model takes [-1, 3], dimension 1 fixed to 3",
            ),
            (
                a("[1, 3]", r#"[1, "2", 3]"#),
                "input 'a': data[1] is a string, not a number of FP32",
            ),
            (
                a("[1, 3]", "[1, null, 3]"),
                "input 'a': data[1] is null, not a number of FP32",
            ),
            (
                a("[1, 3]", "[1, true, 3]"),
                "input 'a': data[1] is a boolean, not a number of FP32",
            ),
            (
                a("[1, 3]", "[1, {}, 3]"),
                "input 'a': data[1] is an object, not a number of FP32",
            ),
            (
                a("[1, 3]", "[1e39, 0, 0]"),
                "input 'a': data[0] = 1e39 is out of the range of FP32",
            ),
            (
                a("[1, 3]", "5"),
                "input 'a': data must be an array of numbers, flat or nested",
            ),
            (
                a("[1, 3]", "null"),
                "input 'a': data must be an array of numbers, flat or nested",
            ),
        ];
        for (given, message) in cases {
            assert_eq!(refusal(with_a(&given)), message, "{given}");
        }
        let datatype = r#"{"name": "a", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}"#;
        assert_eq!(
            refusal(with_a(datatype)),
            "input 'a': datatype 'FP64'; the model takes FP32"
        );
        // A count mismatch is reported before a bad value.
        assert!(refusal(with_a(&a("[1, 3]", r#"["x"]"#))).contains("data has 1"));
    }

    #[test]
    fn integers_are_checked_for_fractions_and_range() {
        let b = |data: &str| {
            let b =
                format!(r#"{{"name": "b", "shape": [1, 2], "datatype": "INT64", "data": {data}}}"#);
            inputs(&format!(
                r#"{{"inputs": [{}, {b}]}}"#,
                a("[1, 3]", "[1, 2, 3]")
            ))
        };
        assert_eq!(b("[3.0, -4e3]").unwrap()[1].data, Data::I64(vec![3, -4000]));
        let max = b("[9223372036854775807, -9223372036854775808]").unwrap();
        assert_eq!(max[1].data, Data::I64(vec![i64::MAX, i64::MIN]));
        assert_eq!(
            refusal(b("[1.5, 1]")),
            "input 'b': data[0] = 1.5 is not an integer, as INT64 needs"
        );
        assert_eq!(
            refusal(b("[1, 9223372036854775808]")),
            "input 'b': data[1] = 9223372036854775808 is out of the range of INT64"
        );
        assert!(refusal(b("[1, 1e19]")).contains("out of the range of INT64"));
        assert!(refusal(b("[1, 99999999999999999999999]")).contains("out of the range"));
        // A fraction is reported before a number out of range, as the Python servers do.
        assert!(refusal(b("[1e19, 0.5]")).contains("data[1] = 0.5 is not an integer"));
        assert!(refusal(b("[true, 1]")).contains("data[0] is a boolean"));
    }

    #[test]
    fn int32_range() {
        let info = ModelInfo {
            inputs: vec![TensorInfo::new("x", DataType::Int32, vec![1, 2])],
            outputs: vec![TensorInfo::new("y", DataType::Int32, vec![1, 1])],
        };
        let x = |data: &str| {
            let body = format!(
                r#"{{"inputs": [{{"name": "x", "shape": [1, 2], "datatype": "INT32", "data": {data}}}]}}"#
            );
            let request = parse_request(body.as_bytes()).unwrap();
            decode_inputs("fixed", &info, &request.inputs)
        };
        assert_eq!(
            x("[2147483647, -2147483648]").unwrap()[0].data,
            Data::I32(vec![i32::MAX, i32::MIN])
        );
        for data in ["[2147483648, 0]", "[-2147483649, 0]", "[2147483648.0, 0]"] {
            let message = refusal(x(data));
            assert!(
                message.contains("input 'x'") && message.contains("INT32"),
                "{message}"
            );
        }
    }

    #[test]
    fn inputs_are_matched_by_name() {
        let c = r#"{"name": "c", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}"#;
        let ok = a("[1, 3]", "[1, 2, 3]");
        assert_eq!(
            refusal(inputs(&format!(r#"{{"inputs": [{ok}, {B}, {c}]}}"#))),
            "input 'c': model 'm' has no such input ('a', 'b')"
        );
        assert_eq!(
            refusal(inputs(&format!(r#"{{"inputs": [{ok}]}}"#))),
            "input 'b': missing; model 'm' needs every input"
        );
        assert_eq!(
            refusal(inputs(&format!(r#"{{"inputs": [{ok}, {B}, {ok}]}}"#))),
            "input 'a': given twice"
        );
    }

    #[test]
    fn a_huge_shape_is_refused_before_any_allocation() {
        // The product overflows: refused as such (the rank fits the graph's).
        let info = ModelInfo {
            inputs: vec![TensorInfo::new("x", DataType::Fp32, vec![-1, -1, -1])],
            outputs: vec![],
        };
        let body = r#"{"inputs": [{"name": "x", "shape": [4294967296, 4294967296, 3], "datatype": "FP32", "data": [1]}]}"#;
        let request = parse_request(body.as_bytes()).unwrap();
        let message = refusal(decode_inputs("m", &info, &request.inputs));
        assert!(
            message.starts_with("input 'x': shape [4294967296, 4294967296, 3] has more"),
            "{message}"
        );
        // A product that fits but that no body could hold: a count mismatch, with the capacity
        // bounded by the text, not the shape.
        let body = r#"{"inputs": [{"name": "x", "shape": [1000000000, 1000000, 1], "datatype": "FP32", "data": [1, 2]}]}"#;
        let request = parse_request(body.as_bytes()).unwrap();
        let message = refusal(decode_inputs("m", &info, &request.inputs));
        assert!(
            message.ends_with("has 1000000000000000 elements, data has 2"),
            "{message}"
        );
    }

    #[test]
    fn request_schema_faults_are_400() {
        for body in [
            "",
            "  ",
            "{inputs:",
            "[]",
            "null",
            "{}",
            r#"{"id": "x"}"#,
            r#"{"inputs": {}}"#,
            r#"{"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32"}]}"#,
            r#"{"inputs": [{"name": "a", "shape": [1.0, 3], "datatype": "FP32", "data": []}]}"#,
            r#"{"inputs": [{"name": "a", "shape": [true, 3], "datatype": "FP32", "data": []}]}"#,
            r#"{"inputs": [{"name": 1, "shape": [1, 3], "datatype": "FP32", "data": []}]}"#,
            r#"{"inputs": [], "id": 5}"#,
            r#"{"inputs": [], "parameters": []}"#,
            r#"{"inputs": [], "outputs": [{"parameters": {}}]}"#,
            r#"{"inputs": []} x"#,
        ] {
            let error = parse_request(body.as_bytes()).expect_err(body);
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{body}");
        }
        for (body, path) in [
            (
                r#"{"inputs": [{"name": "a", "shape": [1.0, 3], "datatype": "FP32", "data": []}]}"#,
                "inputs[0].shape[0]: ",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32"}]}"#,
                "inputs[0]: missing field `data`",
            ),
            (
                r#"{"inputs": [], "outputs": [{"name": 3}]}"#,
                "outputs[0].name: ",
            ),
            (r#"{"id": 5, "inputs": []}"#, "id: "),
            (
                r#"{"id": "x"}"#,
                "the body is not an inference request: missing field `inputs`",
            ),
            ("[]", "the body is not an inference request: "),
            ("{inputs:", "the body is not JSON: "),
        ] {
            let message = parse_request(body.as_bytes()).unwrap_err().message;
            assert!(message.starts_with(path), "{body}: {message}");
        }
        let fine = r#"{"id": null, "parameters": {"a": [1, {"b": 2}]}, "inputs": [], "extra": 1, "outputs": null}"#;
        let request = parse_request(fine.as_bytes()).unwrap();
        assert!(request.inputs.is_empty() && request.id.is_none());
    }

    #[test]
    fn deep_nesting_is_a_400_not_a_stack_overflow() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let message = refusal(with_a(&a("[1, 3]", &deep)));
        assert!(
            message.starts_with("input 'a'") || message.starts_with("the body"),
            "{message}"
        );
    }

    #[test]
    fn outputs_are_picked_by_name() {
        let info = info();
        let out = |names: &[&str]| {
            let list: Vec<RequestOutput> = names
                .iter()
                .map(|n| RequestOutput {
                    name: n.to_string(),
                    parameters: None,
                })
                .collect();
            wanted_outputs("m", &info, Some(&list))
        };
        assert_eq!(wanted_outputs("m", &info, None), Ok(vec![0, 1]));
        assert_eq!(out(&[]), Ok(vec![0, 1]));
        assert_eq!(out(&["winner", "score"]), Ok(vec![1, 0]));
        assert_eq!(
            out(&["nope"]).unwrap_err().message,
            "output 'nope': model 'm' has no such output ('score', 'winner')"
        );
        assert_eq!(
            out(&["score", "score"]).unwrap_err().message,
            "output 'score': asked for twice"
        );
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(quoted("abc"), "'abc'");
        let long = "é".repeat(ECHO_LIMIT + 5);
        let cut = quoted(&long);
        assert_eq!(cut.chars().count(), ECHO_LIMIT + 3);
        assert!(cut.ends_with("…'"));
    }

    #[test]
    fn media_types() {
        let with = |value: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(header::CONTENT_TYPE, v.parse().unwrap());
            }
            check_media_type(&headers).map_err(|e| e.status.as_u16())
        };
        for ok in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some(""),
        ] {
            assert_eq!(with(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
        ] {
            assert_eq!(with(Some(bad)), Err(415), "{bad}");
        }
    }
}
