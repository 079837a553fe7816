//! The request contract of docs/api.md: what a body may hold, and the error every fault gets.
//!
//! A body is first read straight into a [`Payload`] by [`Payload::from_slice`], which accepts
//! only what the full path below would accept unchanged and gives up on anything else (a
//! duplicate key, an unknown or missing field, a wrong type, bad JSON). Only then is it parsed in
//! two steps, as axum's `Json` extractor does, into a `serde_json::Value` (syntax errors are a
//! 400), and by serde derive, through `serde_path_to_error`, into a [`Batch`] or a [`Passenger`]
//! (shape and type errors are a 422 that names the field). Either way [`Payload::checked`] then
//! checks the batch size and [`Passenger::validate`] the ranges, in plain Rust.

use std::borrow::Cow;
use std::fmt::Write;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_path_to_error::Segment;

pub const MAX_BODY_BYTES: usize = 1 << 20;
pub const MAX_BATCH: usize = 1024;
pub const AGE_MAX: f64 = 200.0;
pub const FARE_MAX: f64 = 100_000.0;
pub const COUNT_MAX: i64 = 100;
/// The passenger fields, in the order of a feature row.
pub const FIELDS: [&str; 6] = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare"];

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over [`MAX_BODY_BYTES`].
    TooLarge,
    /// The client stopped sending mid-body.
    Unreadable,
}

/// The whole body, refused past [`MAX_BODY_BYTES`]: what axum's `Bytes` extractor reads under
/// `DefaultBodyLimit::max(MAX_BODY_BYTES)`, without the layer, which inserts the limit into every
/// request's extensions (three allocations on every route, `/health` included).
pub async fn read_body(body: Body) -> Result<Bytes, BodyError> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Female,
    Male,
}

/// One passenger as the client sends it. `age` is `None` when null or absent.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Passenger {
    #[serde(rename = "Pclass", deserialize_with = "integer")]
    pub pclass: i64,
    #[serde(rename = "Sex")]
    pub sex: Sex,
    #[serde(rename = "Age", default)]
    pub age: Option<f64>,
    #[serde(rename = "SibSp", deserialize_with = "integer")]
    pub sibsp: i64,
    #[serde(rename = "Parch", deserialize_with = "integer")]
    pub parch: i64,
    #[serde(rename = "Fare")]
    pub fare: f64,
}

/// An integer as JSON Schema (and the OpenAPI document) has it: `3` or `3.0`, not `2.5`, `"3"` or
/// `true`. serde's own `i64` refuses `3.0`.
fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    match number.as_f64() {
        // Integral floats beyond i64 saturate, and the range check refuses them.
        Some(f) if f.fract() == 0.0 => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!(
            "invalid type: {number}, expected an integer"
        ))),
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub instances: Vec<Passenger>,
}

/// A valid body: one passenger, or a batch of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Single(Passenger),
    Batch(Vec<Passenger>),
}

impl Payload {
    pub fn passengers(&self) -> &[Passenger] {
        match self {
            Payload::Single(passenger) => std::slice::from_ref(passenger),
            Payload::Batch(passengers) => passengers,
        }
    }

    /// A JSON object with an `instances` key is a batch; anything else must be a passenger.
    /// (An untagged enum would try both and lose the path of the field at fault.)
    pub fn from_value(value: Value) -> Result<Self, ApiError> {
        // serde derive would also take a struct written as an array of its fields' values; the
        // contract wants objects, so that is checked on the value first.
        let Some(object) = value.as_object() else {
            let message = "body must be a JSON object: a passenger, or {\"instances\": [...]}";
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message));
        };
        let payload = match object.get("instances") {
            Some(instances) => {
                let items = instances.as_array().map_or(&[][..], Vec::as_slice);
                if let Some(i) = items.iter().position(|item| !item.is_object()) {
                    let at = format!("instances[{i}]");
                    return Err(ApiError::invalid(
                        format!("{at} must be a passenger object"),
                        at,
                    ));
                }
                let batch: Batch = serde_path_to_error::deserialize(value).map_err(shape_error)?;
                Payload::Batch(batch.instances)
            }
            None => Payload::Single(serde_path_to_error::deserialize(value).map_err(shape_error)?),
        };
        payload.checked()
    }

    /// The body read in one pass, without a `Value` and without tracking paths: `None` unless it
    /// is an object that [`Payload::from_value`] reads into the very same passengers, so that the
    /// caller can fall back to the full path for everything else, errors included. It refuses
    /// what that path would accept differently: a duplicate key (there the last one wins) and a
    /// struct written as an array. The result still needs [`Payload::checked`].
    pub fn from_slice(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Fast>(body).ok().map(|fast| fast.0)
    }

    /// The batch size and the range rules, with the path of the first field that breaks one.
    pub fn checked(self) -> Result<Self, ApiError> {
        if let Payload::Batch(passengers) = &self {
            if !(1..=MAX_BATCH).contains(&passengers.len()) {
                return Err(ApiError::invalid(INSTANCES_RULE, "instances"));
            }
        }
        for (i, passenger) in self.passengers().iter().enumerate() {
            passenger.validate().map_err(|field| {
                let path = match self {
                    Payload::Single(_) => field.to_string(),
                    Payload::Batch(_) => format!("instances[{i}].{field}"),
                };
                ApiError::invalid(rule(field).unwrap_or(field), path)
            })?;
        }
        Ok(self)
    }
}

/// The body of [`Payload::from_slice`]: an object that is either a passenger or holds nothing but
/// `instances`, an array of passenger objects.
struct Fast(Payload);

/// A passenger of [`Payload::from_slice`]: only from an object, every field once.
struct FastPassenger(Passenger);

/// The keys of a body, as [`FIELDS`] spells them.
enum Key {
    Instances,
    Field(usize),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a passenger field or instances")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                if key == "instances" {
                    return Ok(Key::Instances);
                }
                match FIELDS.iter().position(|f| *f == key) {
                    Some(i) => Ok(Key::Field(i)),
                    None => Err(E::custom("unknown field")),
                }
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// An integer field, read as [`integer`] reads it.
struct Integer(i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        integer(deserializer).map(Integer)
    }
}

/// The fields of one passenger object, the first key already read; `None` on a repeated key, an
/// unknown one or `instances`.
fn fast_fields<'de, A: serde::de::MapAccess<'de>>(
    mut map: A,
    mut key: Option<Key>,
) -> Result<Passenger, A::Error> {
    use serde::de::Error;
    let (mut pclass, mut sex, mut sibsp, mut parch, mut fare) = (None, None, None, None, None);
    let mut age: Option<Option<f64>> = None;
    while let Some(k) = key {
        let Key::Field(i) = k else {
            return Err(A::Error::custom("instances among passenger fields"));
        };
        let fresh = match i {
            0 => pclass.replace(map.next_value::<Integer>()?.0).is_none(),
            1 => sex.replace(map.next_value::<Sex>()?).is_none(),
            2 => age.replace(map.next_value::<Option<f64>>()?).is_none(),
            3 => sibsp.replace(map.next_value::<Integer>()?.0).is_none(),
            4 => parch.replace(map.next_value::<Integer>()?.0).is_none(),
            _ => fare.replace(map.next_value::<f64>()?).is_none(),
        };
        if !fresh {
            return Err(A::Error::custom("duplicate field"));
        }
        key = map.next_key()?;
    }
    match (pclass, sex, sibsp, parch, fare) {
        (Some(pclass), Some(sex), Some(sibsp), Some(parch), Some(fare)) => Ok(Passenger {
            pclass,
            sex,
            age: age.flatten(),
            sibsp,
            parch,
            fare,
        }),
        _ => Err(A::Error::custom("missing field")),
    }
}

impl<'de> Deserialize<'de> for FastPassenger {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PassengerVisitor;
        impl<'de> serde::de::Visitor<'de> for PassengerVisitor {
            type Value = FastPassenger;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a passenger object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<FastPassenger, A::Error> {
                let first = map.next_key()?;
                fast_fields(map, first).map(FastPassenger)
            }
        }
        deserializer.deserialize_map(PassengerVisitor)
    }
}

impl<'de> Deserialize<'de> for Fast {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> serde::de::Visitor<'de> for BodyVisitor {
            type Value = Fast;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a passenger or a batch")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fast, A::Error> {
                use serde::de::Error;
                match map.next_key()? {
                    Some(Key::Instances) => {
                        let passengers: Vec<FastPassenger> = map.next_value()?;
                        if map.next_key::<Key>()?.is_some() {
                            return Err(A::Error::custom("instances with other keys"));
                        }
                        Ok(Fast(Payload::Batch(
                            passengers.into_iter().map(|p| p.0).collect(),
                        )))
                    }
                    first => fast_fields(map, first).map(|p| Fast(Payload::Single(p))),
                }
            }
        }
        deserializer.deserialize_map(BodyVisitor)
    }
}

const INSTANCES_RULE: &str = "instances must be an array of 1 to 1024 passengers";

/// What each field must be, as told to a client that got it wrong.
fn rule(field: &str) -> Option<&'static str> {
    Some(match field {
        "Pclass" => "Pclass must be an integer between 1 and 3",
        "Sex" => "Sex must be 'male' or 'female'",
        "Age" => "Age must be a number between 0 and 200 or null",
        "SibSp" => "SibSp must be an integer between 0 and 100",
        "Parch" => "Parch must be an integer between 0 and 100",
        "Fare" => "Fare must be a number between 0 and 100000",
        _ => return None,
    })
}

impl Passenger {
    /// The range rules that serde's types do not express; on failure, the first field that
    /// breaks one.
    pub fn validate(&self) -> Result<(), &'static str> {
        let counts = 0..=COUNT_MAX;
        let checks = [
            ("Pclass", (1..=3).contains(&self.pclass)),
            ("Age", self.age.is_none_or(|a| (0.0..=AGE_MAX).contains(&a))),
            ("SibSp", counts.contains(&self.sibsp)),
            ("Parch", counts.contains(&self.parch)),
            ("Fare", (0.0..=FARE_MAX).contains(&self.fare)),
        ];
        match checks.into_iter().find(|(_, ok)| !ok) {
            Some((field, _)) => Err(field),
            None => Ok(()),
        }
    }
}

/// A serde error while turning the JSON value into a [`Batch`] or [`Passenger`]: a 422 naming
/// the field at fault.
fn shape_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let mut path = String::new();
    let mut last = None;
    for segment in err.path().iter() {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(path, "[{index}]");
                last = None;
            }
            Segment::Map { key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                last = Some(key.as_str());
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    let at = |name: &str| match path.as_str() {
        "" => name.to_string(),
        parent => format!("{parent}.{name}"),
    };
    let message = err.inner().to_string();
    // serde_path_to_error puts a missing field's error at the object that should hold it, and an
    // unknown field's at the key itself.
    if let Some(name) = between(&message, "missing field `", "`") {
        return ApiError::invalid(format!("{name} is required"), at(name));
    }
    if let Some(name) = between(&message, "unknown field `", "`, expected") {
        let path = if last == Some(name) {
            path.clone()
        } else {
            at(name)
        };
        return ApiError::invalid(format!("unknown field '{name}'"), path);
    }
    let message: Cow<'static, str> = match last {
        Some("instances") if path == "instances" => INSTANCES_RULE.into(),
        Some(field) => rule(field).map_or(message.into(), Cow::Borrowed),
        None => message.into(),
    };
    ApiError {
        field: (!path.is_empty()).then_some(path),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

/// The field name serde quotes in "{prefix}{name}{suffix}...". The suffix is searched from the
/// end: a client's key may hold anything, serde's text after it never holds the suffix again.
fn between<'a>(message: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    Some(&rest[..rest.rfind(suffix)?])
}

/// Every error the servers send: `{"error": message, "field": path-or-null}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: Cow<'static, str>,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(message: impl Into<Cow<'static, str>>, field: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body exceeds {MAX_BODY_BYTES} bytes"),
            ),
            // Nobody will read the answer.
            BodyError::Unreadable => {
                Self::new(StatusCode::BAD_REQUEST, "could not read the request body")
            }
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            field: self.field.as_deref(),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ),
            // Data errors cannot happen on the way to a `Value`; both mean the text is not JSON.
            JsonRejection::JsonSyntaxError(e) => Self::malformed(&e),
            JsonRejection::JsonDataError(e) => Self::malformed(&e),
            other => Self::new(other.status(), other.body_text()),
        }
    }
}

impl ApiError {
    /// serde_json's own description (it holds line and column, never any server detail).
    fn malformed(err: &dyn std::error::Error) -> Self {
        let mut source = err;
        while let Some(inner) = source.source() {
            source = inner;
        }
        Self::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {source}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str =
        r#"{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}"#;

    fn parse(body: &str) -> Result<Payload, ApiError> {
        Payload::from_value(serde_json::from_str(body).expect("test body is JSON"))
    }

    fn fault(body: &str) -> (u16, String, Option<String>) {
        let err = parse(body).expect_err(body);
        (err.status.as_u16(), err.message.into_owned(), err.field)
    }

    #[test]
    fn single_and_batch() {
        let single = parse(OK).unwrap();
        assert_eq!(single.passengers().len(), 1);
        assert!(matches!(single, Payload::Single(_)));
        let batch = parse(&format!(r#"{{"instances": [{OK}, {OK}]}}"#)).unwrap();
        assert!(matches!(&batch, Payload::Batch(p) if p.len() == 2));
        let no_age = parse(r#"{"Pclass": 1, "Sex": "female", "SibSp": 0, "Parch": 0, "Fare": 0}"#);
        assert_eq!(no_age.unwrap().passengers()[0].age, None);
    }

    #[test]
    fn fields_at_fault_are_named() {
        let cases = [
            (
                r#"{"Pclass": 2.5}"#,
                "Pclass",
                "Pclass must be an integer between 1 and 3",
            ),
            (
                r#"{"Pclass": 4, "Sex": "male", "SibSp": 1, "Parch": 0, "Fare": 1}"#,
                "Pclass",
                "Pclass must be an integer between 1 and 3",
            ),
            (
                r#"{"Pclass": 1, "Sex": "Male"}"#,
                "Sex",
                "Sex must be 'male' or 'female'",
            ),
            (
                r#"{"Pclass": 1, "Sex": "male", "SibSp": 0, "Parch": 0}"#,
                "Fare",
                "Fare is required",
            ),
            (
                r#"{"Pclass": 1, "Sex": "male", "SibSp": 0, "Parch": 0, "Fare": 1, "fare": 2}"#,
                "fare",
                "unknown field 'fare'",
            ),
            (
                r#"{"Pclass": 1, "Sex": "male", "Age": true}"#,
                "Age",
                "Age must be a number between 0 and 200 or null",
            ),
            (
                r#"{"Pclass": 1, "Sex": "male", "SibSp": 101, "Parch": 0, "Fare": 1}"#,
                "SibSp",
                "SibSp must be an integer between 0 and 100",
            ),
            (
                r#"{"Pclass": 1, "Sex": "male", "SibSp": 0, "Parch": 0, "Fare": 1e300}"#,
                "Fare",
                "Fare must be a number between 0 and 100000",
            ),
            (r#"{"instances": []}"#, "instances", INSTANCES_RULE),
            (r#"{"instances": {}}"#, "instances", INSTANCES_RULE),
            (
                r#"{"instances": [], "Pclass": 1}"#,
                "Pclass",
                "unknown field 'Pclass'",
            ),
        ];
        for (body, field, message) in cases {
            assert_eq!(
                fault(body),
                (422, message.into(), Some(field.into())),
                "{body}"
            );
        }
    }

    #[test]
    fn paths_into_a_batch() {
        let bad_age = OK.replace("22.0", "-3");
        let body = format!(r#"{{"instances": [{OK}, {bad_age}]}}"#);
        assert_eq!(fault(&body).2.as_deref(), Some("instances[1].Age"));
        let body = format!(r#"{{"instances": [{OK}, 7]}}"#);
        assert_eq!(fault(&body).2.as_deref(), Some("instances[1]"));
        let body = format!(r#"{{"instances": [{OK}, {{"Pclass": 1}}]}}"#);
        assert_eq!(fault(&body).2.as_deref(), Some("instances[1].Sex"));
        let body = format!(
            r#"{{"instances": [{OK}, {{"Pclass": 1, "Sex": "male", "SibSp": 1, "Parch": 0, "Fare": 7, "x`, y": 1}}]}}"#
        );
        assert_eq!(fault(&body).2.as_deref(), Some("instances[1].x`, y"));
        let many = vec![OK; MAX_BATCH + 1].join(",");
        let body = format!(r#"{{"instances": [{many}]}}"#);
        assert_eq!(fault(&body).2.as_deref(), Some("instances"));
    }

    #[test]
    fn a_body_that_is_not_an_object_has_no_field() {
        for body in ["[1]", "1", "null", "\"x\"", "[]"] {
            let (status, _, field) = fault(body);
            assert_eq!((status, field), (422, None), "{body}");
        }
    }
}
