//! The one error type of the crate. Every fallible function returns [`Result`].

use thiserror::Error;

/// Everything that can go wrong, each variant carrying what a user needs to fix it.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// An input slice had no elements.
    #[error("empty input: {what} has no elements")]
    EmptyInput { what: &'static str },

    /// A NaN or infinity was found; quantizing it would silently poison a whole scope.
    #[error("non-finite value {} at index {index} of {what}", non_finite_name(*value))]
    NonFinite { what: &'static str, index: usize, value: f32 },

    /// `rows * cols` (or another size) does not match the data given.
    #[error("shape mismatch: {what}: expected {expected} elements, got {actual}")]
    ShapeMismatch { what: &'static str, expected: usize, actual: usize },

    /// A size computation overflowed `usize`.
    #[error("size overflow: {what}")]
    SizeOverflow { what: &'static str },

    /// A row length is not a multiple of the layout's block size.
    #[error("{layout} needs rows whose length is a multiple of {block}; got {cols}")]
    RowNotBlockAligned { layout: &'static str, block: usize, cols: usize },

    /// A combination of options that the layout cannot store.
    #[error("unsupported combination: {0}")]
    Unsupported(String),

    /// An option value outside its domain.
    #[error("invalid option {name}: {reason}")]
    InvalidOption { name: &'static str, reason: String },

    /// A byte buffer whose length does not match the layout and shape it claims.
    #[error("{layout}: expected {expected} bytes, got {actual}")]
    ByteLength { layout: &'static str, expected: usize, actual: usize },

    /// An error of one named tensor of a batch or a model; `source` keeps its kind.
    #[error("tensor '{name}': {source}")]
    Tensor { name: String, source: Box<Error> },

    /// A stored byte that cannot be a valid code of the layout.
    #[error("{layout}: invalid code {code} at value index {index}")]
    InvalidCode { layout: &'static str, index: usize, code: i32 },

    /// A model file's header goes on past the bytes given: read the first `needed`
    /// bytes of the file (at most its size) and try again.
    #[error("need the first {needed} bytes of the file to read its header")]
    NeedMoreBytes { needed: u64 },

    /// A file of a Hugging Face model folder (`config.json`, `tokenizer.json`...) that
    /// lacks a field the conversion needs, or holds a value it cannot use.
    #[error("{file}: {field}: {reason}")]
    ModelFolder { file: String, field: String, reason: String },

    /// A model file (safetensors, GGUF, or a shard index) that breaks its format.
    #[error("malformed {format}: {reason}")]
    Malformed { format: &'static str, reason: String },
}

impl Error {
    /// The error itself, under any [`Error::Tensor`] naming where it happened.
    pub fn root(&self) -> &Error {
        match self {
            Error::Tensor { source, .. } => source.root(),
            other => other,
        }
    }

    /// Names the tensor this error belongs to.
    pub fn in_tensor(self, name: &str) -> Error {
        Error::Tensor { name: name.to_string(), source: Box::new(self) }
    }
}

/// The name of a non-finite value, written without float formatting: the messages stay
/// free of `core::fmt`'s float code, which would be a large part of a lean `.wasm`.
fn non_finite_name(value: f32) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value == f32::INFINITY {
        "inf"
    } else if value == f32::NEG_INFINITY {
        "-inf"
    } else {
        "finite"
    }
}

/// A value of an option for an error message, written with integer formatting only: the
/// messages stay free of float formatting code (ryu's or `core::fmt`'s), a large part of a
/// lean `.wasm`. Finite values print with up to six decimals (exactly where they have no
/// more; those past 10^15 as a mantissa and exponent), and values closer to zero than a
/// millionth say so.
pub(crate) fn option_value(value: f32) -> String {
    if !value.is_finite() {
        return non_finite_name(value).to_string();
    }
    let sign = if value.is_sign_negative() && value != 0.0 { "-" } else { "" };
    let magnitude = f64::from(value.abs());
    if magnitude >= 1e15 {
        let (mut mantissa, mut exponent) = (magnitude, 0);
        while mantissa >= 10.0 {
            mantissa /= 10.0;
            exponent += 1;
        }
        return format!("{sign}{}e{exponent}", option_value(mantissa as f32));
    }
    let micros = (magnitude * 1e6).round() as u64;
    if micros == 0 && magnitude > 0.0 {
        return format!("{sign}0.000000 (rounded; nonzero)");
    }
    let (whole, fraction) = (micros / 1_000_000, micros % 1_000_000);
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:06}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Checked `a * b`, naming what overflowed.
pub(crate) fn checked_mul(a: usize, b: usize, what: &'static str) -> Result<usize> {
    a.checked_mul(b).ok_or(Error::SizeOverflow { what })
}

/// The index of `name` in `names`, or the error naming the choices: "unknown layout 'x'
/// (expected a, b or c)", where `what` is "layout" and `option` the option that carried
/// it. Not generic, so that every enum parsed by name shares one copy of it.
pub(crate) fn index_by_name(names: &[&str], option: &'static str, what: &str, name: &str) -> Result<usize> {
    names.iter().position(|&n| n == name).ok_or_else(|| Error::InvalidOption {
        name: option,
        reason: format!("unknown {what} '{name}' (expected {})", one_of(names)),
    })
}

/// "a, b or c".
pub(crate) fn one_of(names: &[&str]) -> String {
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(if i + 1 == names.len() { " or " } else { ", " });
        }
        out.push_str(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::option_value;

    #[test]
    fn option_values_print_without_float_formatting() {
        let cases: [(f32, &str); 10] = [
            (f32::NAN, "NaN"),
            (f32::NEG_INFINITY, "-inf"),
            (0.0, "0"),
            (-0.0, "0"),
            (-1.0, "-1"),
            (100.5, "100.5"),
            (0.25, "0.25"),
            (-3.000001, "-3.000001"),
            (1e-9, "0.000000 (rounded; nonzero)"),
            (-2.5e20, "-2.5e20"),
        ];
        for (value, want) in cases {
            assert_eq!(option_value(value), want, "{value}");
        }
    }
}
