//! preprocess.json: the one definition of a model's input, shared with the Python servers
//! (`servebench.features.Preprocessor`).

use std::path::Path;

use serde_json::Value;

use crate::contract::{FIELDS, Passenger, Sex};

pub const FORMAT_VERSION: i64 = 1;
/// Width of a feature row.
pub const N_FEATURES: usize = FIELDS.len();

#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    female: f64,
    male: f64,
    age_fill: f64,
    mean: [f64; N_FEATURES],
    scale: [f64; N_FEATURES],
}

impl Preprocessor {
    /// No scaling at all: for a server of model packs alone, which serves no record model and
    /// so never preprocesses a passenger, and has no preprocess.json to read.
    pub fn identity() -> Self {
        Self {
            female: 0.0,
            male: 1.0,
            age_fill: 0.0,
            mean: [0.0; N_FEATURES],
            scale: [1.0; N_FEATURES],
        }
    }

    /// Read and check preprocess.json; the error names the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("missing preprocessing file {}", path.display())
            } else {
                format!("cannot read preprocessing file {}: {e}", path.display())
            }
        })?;
        let doc: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("corrupt preprocessing file {}: {e}", path.display()))?;
        Self::from_json(&doc)
            .map_err(|e| format!("corrupt preprocessing file {}: {e}", path.display()))
    }

    /// `Preprocessor.from_json`, plus the checks Python only trips over at the first request
    /// (a sex missing from the mapping) or never (non-finite statistics).
    pub fn from_json(doc: &Value) -> Result<Self, String> {
        let version = doc.get("format_version");
        if version.and_then(Value::as_f64) != Some(FORMAT_VERSION as f64) {
            return Err(format!(
                "format_version {}, expected {FORMAT_VERSION}",
                version.map_or("None".to_string(), Value::to_string)
            ));
        }
        let features: Option<Vec<&str>> = doc
            .get("features")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_str).collect());
        if features.as_deref() != Some(&FIELDS[..]) {
            return Err(format!(
                "features {}, expected {FIELDS:?}",
                doc.get("features")
                    .map_or("None".to_string(), Value::to_string)
            ));
        }
        let six = |name: &str| -> Option<[f64; N_FEATURES]> {
            let values: Vec<f64> = doc
                .get(name)?
                .as_array()?
                .iter()
                .map(Value::as_f64)
                .collect::<Option<_>>()?;
            values.try_into().ok()
        };
        let (Some(mean), Some(scale)) = (six("mean"), six("scale")) else {
            return Err("needs six means and six positive scales".into());
        };
        if !mean.iter().all(|m| m.is_finite()) || !scale.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err("needs six means and six positive scales".into());
        }
        let sex = |name: &str| -> Result<f64, String> {
            let value = doc
                .get("sex_mapping")
                .and_then(|m| m.get(name))
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("sex_mapping has no number for {name:?}"))?;
            // Python stores int(v).
            Ok(value.trunc())
        };
        let age_fill = doc
            .get("fill_values")
            .and_then(|f| f.get("Age"))
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())
            .ok_or("fill_values has no number for \"Age\"")?;
        Ok(Self {
            female: sex("female")?,
            male: sex("male")?,
            age_fill,
            mean,
            scale,
        })
    }

    /// One passenger's features: `(raw - mean) / scale` in f64, then rounded to f32, like
    /// `Preprocessor._finish`.
    pub fn features(&self, p: &Passenger) -> [f32; N_FEATURES] {
        let raw = [
            p.pclass as f64,
            match p.sex {
                Sex::Female => self.female,
                Sex::Male => self.male,
            },
            p.age.unwrap_or(self.age_fill),
            p.sibsp as f64,
            p.parch as f64,
            p.fare,
        ];
        std::array::from_fn(|i| ((raw[i] - self.mean[i]) / self.scale[i]) as f32)
    }

    /// Row-major `[passengers.len(), N_FEATURES]`.
    pub fn transform(&self, passengers: &[Passenger]) -> Vec<f32> {
        let mut out = Vec::with_capacity(passengers.len() * N_FEATURES);
        for p in passengers {
            out.extend_from_slice(&self.features(p));
        }
        out
    }
}
