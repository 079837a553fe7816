//! The request contract of docs/api.md, rule for rule and message for message the same as
//! `servebench.contract`: size, content type, JSON syntax, shape, then each passenger's fields in
//! order. The shared vectors in tests/vectors/contract.json hold both sides to the same answers.

use crate::json::{self, Value};

pub const FIELDS: [&str; 6] = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare"];
pub const MAX_BODY_BYTES: usize = 1 << 20;
pub const MAX_BATCH: usize = 1024;
pub const MAX_DEPTH: usize = 32;
pub const AGE_MAX: f64 = 200.0;
pub const FARE_MAX: f64 = 100_000.0;
pub const COUNT_MAX: i64 = 100;

// Python formats the bounds with `{high:g}`, which prints 200.0 as "200".
const AGE_MESSAGE: &str = "Age must be a number between 0 and 200 or null";
const FARE_MESSAGE: &str = "Fare must be a number between 0 and 100000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
}

/// One validated passenger, as the client sent it (`age` is `None` when null or absent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Passenger {
    pub pclass: i64,
    pub sex: Sex,
    pub age: Option<f64>,
    pub sibsp: i64,
    pub parch: i64,
    pub fare: f64,
}

/// A request the contract rejects. Message and field are WTF-8 bytes because they can quote a
/// client's key, and a JSON key may hold a lone surrogate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError {
    status: u16,
    message: Vec<u8>,
    field: Option<Vec<u8>>,
}

impl ContractError {
    pub fn new(status: u16, message: impl Into<Vec<u8>>, field: Option<Vec<u8>>) -> Self {
        Self {
            status,
            message: message.into(),
            field,
        }
    }

    pub(crate) fn bad_json(message: impl Into<Vec<u8>>) -> Self {
        Self::new(400, message, None)
    }

    pub(crate) fn too_deep() -> Self {
        Self::bad_json(format!(
            "malformed JSON: nested deeper than {MAX_DEPTH} levels"
        ))
    }

    pub(crate) fn duplicate_key(key: &[u8]) -> Self {
        let message = [b"malformed JSON: duplicate key '", key, b"'"].concat();
        Self::new(400, message, Some(key.to_vec()))
    }

    fn invalid(message: impl Into<Vec<u8>>, field: impl Into<Vec<u8>>) -> Self {
        Self::new(422, message, Some(field.into()))
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn message(&self) -> &[u8] {
        &self.message
    }

    pub fn field(&self) -> Option<&[u8]> {
        self.field.as_deref()
    }

    pub fn message_lossy(&self) -> String {
        String::from_utf8_lossy(&self.message).into_owned()
    }

    pub fn field_lossy(&self) -> Option<String> {
        self.field
            .as_deref()
            .map(|f| String::from_utf8_lossy(f).into_owned())
    }

    /// `{"error":message,"field":field-or-null}`, compact like the Python servers' orjson output.
    pub fn to_json(&self) -> Vec<u8> {
        error_json(&self.message, self.field.as_deref())
    }
}

pub fn error_json(message: &[u8], field: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 40);
    out.extend_from_slice(b"{\"error\":");
    json::write_json_string(&mut out, message);
    out.extend_from_slice(b",\"field\":");
    match field {
        Some(field) => json::write_json_string(&mut out, field),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    out
}

/// Validated passengers, and whether they came as `{"instances": [...]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub passengers: Vec<Passenger>,
    pub batch: bool,
}

/// `contract.check_content_type`. Servers hand Python header values decoded as latin-1; Python's
/// `str.strip()` then removes these latin-1 whitespace characters, and `str.lower()` can only map
/// a latin-1 character to ASCII when it is an ASCII capital, so the test reduces to bytes.
pub fn check_content_type(content_type: Option<&[u8]>) -> Result<(), ContractError> {
    let is_space = |b: &u8| {
        matches!(
            b,
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ' | 0x85 | 0xa0
        )
    };
    let value = content_type.unwrap_or_default();
    let media_type = value.split(|&b| b == b';').next().unwrap_or_default();
    let start = media_type.iter().position(|b| !is_space(b));
    let media_type = match start {
        Some(start) => {
            let end = media_type
                .iter()
                .rposition(|b| !is_space(b))
                .unwrap_or(start);
            &media_type[start..=end]
        }
        None => &[][..],
    };
    if media_type.eq_ignore_ascii_case(b"application/json") {
        Ok(())
    } else {
        Err(ContractError::new(
            415,
            "Content-Type must be application/json",
            None,
        ))
    }
}

/// Everything between the raw request and validated passengers, in the contract's order
/// (`contract.parse_request`).
pub fn parse_request(body: &[u8], content_type: Option<&[u8]>) -> Result<Request, ContractError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large());
    }
    check_content_type(content_type)?;
    let doc = json::decode(body)?;
    // No valid body nests deeper than 3, so past 32 levels the answer is always this 400; it is
    // only decided after validation fails so that the order of checks is Python's.
    validate_body(&doc.value).map_err(|err| {
        if doc.depth > MAX_DEPTH {
            ContractError::too_deep()
        } else {
            err
        }
    })
}

pub fn body_too_large() -> ContractError {
    ContractError::new(413, format!("body exceeds {MAX_BODY_BYTES} bytes"), None)
}

/// `contract.validate_body`.
pub fn validate_body(doc: &Value<'_>) -> Result<Request, ContractError> {
    if let (Value::Object(pairs), Some(instances)) = (doc, doc.get("instances")) {
        let extra = pairs
            .iter()
            .map(|(k, _)| k.as_ref())
            .filter(|&k| k != b"instances")
            .min();
        if let Some(extra) = extra {
            let message = [b"unknown field '", extra, b"' beside instances"].concat();
            return Err(ContractError::invalid(message, extra));
        }
        let items = match instances {
            Value::Array(items) if (1..=MAX_BATCH).contains(&items.len()) => items,
            _ => {
                return Err(ContractError::invalid(
                    format!("instances must be an array of 1 to {MAX_BATCH} passengers"),
                    "instances",
                ));
            }
        };
        let passengers = items
            .iter()
            .enumerate()
            .map(|(i, item)| validate_passenger(item, Some(i)))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Request {
            passengers,
            batch: true,
        });
    }
    Ok(Request {
        passengers: vec![validate_passenger(doc, None)?],
        batch: false,
    })
}

/// `contract.validate_passenger`; `index` is the position inside `instances`, if any. Paths are
/// only formatted on the way out with an error.
pub fn validate_passenger(
    obj: &Value<'_>,
    index: Option<usize>,
) -> Result<Passenger, ContractError> {
    let prefix = || match index {
        Some(i) => format!("instances[{i}]."),
        None => String::new(),
    };
    let at = |name: &[u8]| [prefix().as_bytes(), name].concat();
    let Value::Object(pairs) = obj else {
        return Err(match index {
            Some(i) => {
                let place = format!("instances[{i}]");
                ContractError::new(
                    422,
                    format!("{place} must be a JSON object"),
                    Some(place.into()),
                )
            }
            None => ContractError::new(422, "body must be a JSON object", None),
        });
    };
    let required = |name: &str| {
        obj.get(name).ok_or_else(|| {
            ContractError::invalid(format!("{name} is required"), at(name.as_bytes()))
        })
    };
    let integer = |name: &str, low: i64, high: i64| -> Result<i64, ContractError> {
        let value = required(name)?;
        match *value {
            Value::Int(v) if (low..=high).contains(&v) => Ok(v),
            Value::Float(v) if v.fract() == 0.0 && low as f64 <= v && v <= high as f64 => {
                Ok(v as i64)
            }
            _ => Err(ContractError::invalid(
                format!("{name} must be an integer between {low} and {high}"),
                at(name.as_bytes()),
            )),
        }
    };
    let number = |value: Option<&Value<'_>>, high: f64| match value {
        Some(&Value::Int(v)) if 0 <= v && v <= high as i64 => Some(v as f64),
        Some(&Value::Float(v)) if (0.0..=high).contains(&v) => Some(v),
        _ => None,
    };

    let pclass = integer("Pclass", 1, 3)?;
    let sex = match required("Sex")? {
        Value::Str(s) if s.as_ref() == b"male" => Sex::Male,
        Value::Str(s) if s.as_ref() == b"female" => Sex::Female,
        _ => {
            return Err(ContractError::invalid(
                "Sex must be 'male' or 'female'",
                at(b"Sex"),
            ));
        }
    };
    let age = match obj.get("Age") {
        None | Some(Value::Null) => None,
        value => Some(
            number(value, AGE_MAX)
                .ok_or_else(|| ContractError::invalid(AGE_MESSAGE, at(b"Age")))?,
        ),
    };
    let sibsp = integer("SibSp", 0, COUNT_MAX)?;
    let parch = integer("Parch", 0, COUNT_MAX)?;
    let fare_value = required("Fare")?;
    let fare = number(Some(fare_value), FARE_MAX)
        .ok_or_else(|| ContractError::invalid(FARE_MESSAGE, at(b"Fare")))?;
    let unknown = pairs
        .iter()
        .map(|(k, _)| k.as_ref())
        .filter(|k| !FIELDS.iter().any(|f| f.as_bytes() == *k))
        .min();
    if let Some(key) = unknown {
        return Err(ContractError::invalid(
            [b"unknown field '", key, b"'"].concat(),
            at(key),
        ));
    }
    Ok(Passenger {
        pclass,
        sex,
        age,
        sibsp,
        parch,
        fare,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for ok in [
            &b"application/json"[..],
            b"Application/JSON; charset=utf-8",
            b" application/json ;",
            b"\xa0application/json\t",
        ] {
            assert!(check_content_type(Some(ok)).is_ok(), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b"text/plain",
            b"application/json2",
            b"application/ json",
            b"application/x-json",
        ] {
            assert_eq!(check_content_type(Some(bad)).unwrap_err().status(), 415);
        }
        assert_eq!(check_content_type(None).unwrap_err().status(), 415);
    }

    #[test]
    fn messages() {
        let err =
            |body: &str| parse_request(body.as_bytes(), Some(b"application/json")).unwrap_err();
        let e = err(
            r#"{"instances": [{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}, {"Pclass": 3, "Sex": "male", "Age": -3, "SibSp": 1, "Parch": 0, "Fare": 7.25}]}"#,
        );
        assert_eq!(
            e.message_lossy(),
            "Age must be a number between 0 and 200 or null"
        );
        assert_eq!(e.field_lossy().as_deref(), Some("instances[1].Age"));
        let e = err(r#"{"instances": [], "zeta": 1, "Alpha": 2}"#);
        assert_eq!(e.message_lossy(), "unknown field 'Alpha' beside instances");
        let e = err(r#"{"Pclass": 1.5}"#);
        assert_eq!(
            e.message_lossy(),
            "Pclass must be an integer between 1 and 3"
        );
        let e = err(r#"{"Pclass": 1, "Sex": "male", "SibSp": 0, "Parch": 0, "Fare": 1e300}"#);
        assert_eq!(
            e.message_lossy(),
            "Fare must be a number between 0 and 100000"
        );
        let e = err(r#"[1]"#);
        assert_eq!(
            (e.status(), e.message_lossy(), e.field()),
            (422, "body must be a JSON object".into(), None)
        );
        let e = err(r#"{"instances": [1]}"#);
        assert_eq!(e.message_lossy(), "instances[0] must be a JSON object");
        let e = err(
            r#"{"Pclass": 1, "Sex": "male", "SibSp": 0, "Parch": 0, "Fare": 1, "b": 1, "a": 2}"#,
        );
        assert_eq!(
            (e.message_lossy(), e.field_lossy()),
            ("unknown field 'a'".into(), Some("a".into()))
        );
        let e = err(&format!("{}{}", "[".repeat(33), "]".repeat(33)));
        assert_eq!(
            e.message_lossy(),
            "malformed JSON: nested deeper than 32 levels"
        );
        let e = err(&format!("{}{}", "[".repeat(32), "]".repeat(32)));
        assert_eq!(e.status(), 422);
    }

    #[test]
    fn error_body() {
        let e = ContractError::invalid(&b"unknown field '\xed\xa0\x80'"[..], &b"\xed\xa0\x80"[..]);
        assert_eq!(
            String::from_utf8(e.to_json()).unwrap(),
            r#"{"error":"unknown field '\ud800'","field":"\ud800"}"#
        );
        assert_eq!(
            String::from_utf8(body_too_large().to_json()).unwrap(),
            r#"{"error":"body exceeds 1048576 bytes","field":null}"#
        );
    }
}
