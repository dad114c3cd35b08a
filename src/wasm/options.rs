//! Options objects from JavaScript, read key by key.
//!
//! Every error names the options object, the key and, for a value of the wrong type,
//! the value as JavaScript shows it. Reading with `js_sys` rather than a serde
//! deserializer keeps the generic deserializer's error path, and with it float
//! formatting, out of the `.wasm` (about 30 KB of a lean build).

use js_sys::{Array, Number, Object, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// A plain options object whose keys have all been checked against a known list.
pub(crate) struct Options<'a> {
    /// What the object is, for messages ("ternary options").
    what: &'a str,
    /// `None` for `undefined` or `null`: every option then takes its default.
    object: Option<Object>,
}

impl<'a> Options<'a> {
    /// Reads `value` as an options object: `undefined`/`null` mean no options; anything
    /// but a plain object (arrays and functions included) is refused, and so is a key
    /// outside `known`, by name.
    pub(crate) fn read(value: &JsValue, what: &'a str, known: &[&str]) -> Result<Self, JsError> {
        if value.is_undefined() || value.is_null() {
            return Ok(Self { what, object: None });
        }
        let object =
            value.dyn_ref::<Object>().filter(|_| !value.is_function() && !Array::is_array(value)).ok_or_else(|| {
                JsError::new(&format!("invalid {what}: expected an options object, got {}", describe(value)))
            })?;
        for key in Object::keys(object).iter() {
            let key = key.as_string().unwrap_or_default();
            if !known.contains(&key.as_str()) {
                return Err(JsError::new(&format!(
                    "invalid {what}: unknown option '{key}' (known: {})",
                    known.join(", ")
                )));
            }
        }
        Ok(Self { what, object: Some(object.clone()) })
    }

    /// The value under `key`, or `None` where it is missing, `undefined` or `null`.
    pub(crate) fn value(&self, key: &str) -> Option<JsValue> {
        let value = Reflect::get(self.object.as_ref()?, &JsValue::from_str(key)).ok()?;
        (!value.is_undefined() && !value.is_null()).then_some(value)
    }

    fn wrong_type(&self, key: &str, expected: &str, value: &JsValue) -> JsError {
        JsError::new(&format!("invalid {}: option '{key}' must be {expected}, got {}", self.what, describe(value)))
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, JsError> {
        self.value(key)
            .map(|value| value.as_string().ok_or_else(|| self.wrong_type(key, "a string", &value)))
            .transpose()
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, JsError> {
        self.value(key)
            .map(|value| value.as_bool().ok_or_else(|| self.wrong_type(key, "a boolean", &value)))
            .transpose()
    }

    /// Any number, NaN and infinities included: the range is the core's to check.
    pub(crate) fn number(&self, key: &str) -> Result<Option<f64>, JsError> {
        self.value(key).map(|value| value.as_f64().ok_or_else(|| self.wrong_type(key, "a number", &value))).transpose()
    }

    /// An integer from 0 to `usize::MAX` (4294967295 on wasm32).
    pub(crate) fn size(&self, key: &str) -> Result<Option<usize>, JsError> {
        self.value(key)
            .map(|value| {
                value
                    .as_f64()
                    .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= usize::MAX as f64)
                    .map(|n| n as usize)
                    .ok_or_else(|| self.wrong_type(key, &format!("an integer from 0 to {}", usize::MAX), &value))
            })
            .transpose()
    }

    /// An array of strings.
    #[cfg(feature = "model-files")]
    pub(crate) fn strings(&self, key: &str) -> Result<Option<Vec<String>>, JsError> {
        self.value(key)
            .map(|value| {
                value
                    .dyn_ref::<Array>()
                    .and_then(|array| array.iter().map(|item| item.as_string()).collect::<Option<Vec<String>>>())
                    .ok_or_else(|| self.wrong_type(key, "an array of strings", &value))
            })
            .transpose()
    }

    /// The options object under `key`, read like [`Options::read`].
    pub(crate) fn nested(&self, key: &str, what: &'a str, known: &[&str]) -> Result<Options<'a>, JsError> {
        Options::read(&self.value(key).unwrap_or(JsValue::UNDEFINED), what, known)
    }
}

/// A JavaScript value as a message shows it: strings quoted, numbers as JavaScript
/// prints them, objects by kind.
pub(crate) fn describe(value: &JsValue) -> String {
    if value.is_string() {
        return JSON::stringify(value).map(String::from).unwrap_or_default();
    }
    if let Some(n) = value.as_f64() {
        return Number::from(n).to_string_with_radix(10).map(String::from).unwrap_or_default();
    }
    if let Some(b) = value.as_bool() {
        return if b { "true" } else { "false" }.into();
    }
    let kind = if value.is_null() {
        "null"
    } else if value.is_undefined() {
        "undefined"
    } else if value.is_function() {
        "a function"
    } else if Array::is_array(value) {
        "an array"
    } else if value.is_symbol() {
        "a symbol"
    } else if value.is_bigint() {
        "a bigint"
    } else {
        "an object"
    };
    kind.into()
}
