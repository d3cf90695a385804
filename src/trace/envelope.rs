//! The envelope of every `--format json` output: the llmforge version that produced it and,
//! for cost commands, the engine and the precision the costs were computed at, next to the
//! command's own fields.
//!
//! ```
//! use llmforge::trace::{JsonMeta, json_document};
//! let body = serde_json::json!({"ttft_s": 0.5});
//! let text = json_document(&JsonMeta::cost("roofline", None), &body).unwrap();
//! let v: serde_json::Value = serde_json::from_str(&text).unwrap();
//! assert_eq!(v["llmforge_version"], llmforge::provenance::VERSION);
//! assert_eq!(v["engine"], "roofline");
//! assert_eq!(v["ttft_s"], 0.5);
//! ```
//!
//! The body must serialize as a JSON object (a struct or a map): its fields sit beside the
//! envelope's, in the body's own order. A body that already carries `engine` or `precision`
//! (a run summary does) keeps its own; the envelope adds only what is missing.

use super::TraceError;
use crate::model::{Precision, Precisions};
use crate::provenance::VERSION;
use serde::Serialize;

/// What an output was computed at.
#[derive(Clone, Debug, PartialEq)]
pub enum PrecisionMeta {
    /// One run: weights, activations and KV cache formats (an object).
    Run(Precisions),
    /// One format for every operand of a single kernel (a string).
    Operands(Precision),
    /// Several runs at these formats, e.g. a sweep over `--precision fp16,int8` (a list).
    Each(Vec<Precision>),
    /// Each row of the output states its own, e.g. measured traces (the string `per row`).
    PerRow,
}

impl Serialize for PrecisionMeta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PrecisionMeta::Run(p) => p.serialize(s),
            PrecisionMeta::Operands(p) => p.serialize(s),
            PrecisionMeta::Each(v) => v.serialize(s),
            PrecisionMeta::PerRow => s.serialize_str("per row"),
        }
    }
}

/// The envelope's optional fields. [`JsonMeta::default`] is for commands that cost nothing
/// (the version alone).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JsonMeta {
    /// The cost engine (`sim`, `roofline`, or a kernel model such as `systolic`).
    pub engine: Option<String>,
    pub precision: Option<PrecisionMeta>,
}

impl JsonMeta {
    /// A cost command's envelope.
    pub fn cost(engine: &str, precision: Option<PrecisionMeta>) -> JsonMeta {
        JsonMeta {
            engine: Some(engine.to_string()),
            precision,
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a, T: ?Sized> {
    llmforge_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    precision: Option<&'a PrecisionMeta>,
    #[serde(flatten)]
    body: &'a T,
}

/// `body` as pretty JSON (with a final newline) inside the envelope.
pub fn json_document<T: Serialize + ?Sized>(meta: &JsonMeta, body: &T) -> Result<String, TraceError> {
    let encode = |e: serde_json::Error| TraceError::Encode(e.to_string());
    // Which envelope fields the body already has (a run summary names its engine).
    let probe = serde_json::to_value(body).map_err(encode)?;
    let Some(fields) = probe.as_object() else {
        return Err(TraceError::Encode(
            "a JSON output must be an object to carry the llmforge version".into(),
        ));
    };
    if fields.contains_key("llmforge_version") {
        return Err(TraceError::Encode(
            "the output already has a field `llmforge_version`".into(),
        ));
    }
    let envelope = Envelope {
        llmforge_version: VERSION,
        engine: meta.engine.as_deref().filter(|_| !fields.contains_key("engine")),
        precision: meta
            .precision
            .as_ref()
            .filter(|_| !fields.contains_key("precision")),
        body,
    };
    let mut text = serde_json::to_string_pretty(&envelope).map_err(encode)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Body {
        engine: &'static str,
        z: u32,
        a: u32,
    }

    #[test]
    fn fields_keep_their_order_and_the_body_keeps_its_engine() {
        let meta = JsonMeta::cost("sim", Some(PrecisionMeta::Run(Precisions::all(Precision::Int8))));
        let text = json_document(
            &meta,
            &Body {
                engine: "roofline",
                z: 1,
                a: 2,
            },
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["engine"], "roofline");
        assert_eq!(v["precision"]["weights"], "int8");
        assert_eq!(text.matches("\"engine\"").count(), 1, "{text}");
        // envelope first, then the body in its own order
        let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
        assert!(pos("llmforge_version") < pos("precision"));
        assert!(pos("precision") < pos("engine") && pos("z") < pos("a"));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn non_objects_are_refused() {
        let e = json_document(&JsonMeta::default(), &[1, 2]).unwrap_err();
        assert!(e.to_string().contains("object"), "{e}");
        let v = json_document(&JsonMeta::default(), &serde_json::json!({"rows": []})).unwrap();
        assert!(!v.contains("engine") && v.contains("llmforge_version"));
        let per_row = JsonMeta::cost("roofline", Some(PrecisionMeta::PerRow));
        let v = json_document(&per_row, &serde_json::json!({})).unwrap();
        assert!(v.contains("\"precision\": \"per row\""), "{v}");
    }
}
