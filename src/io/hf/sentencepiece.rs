//! The pieces of a SentencePiece `tokenizer.model` (a serialized `ModelProto`), read
//! without a protobuf library: only field 1 (`pieces`) matters here, each a message of
//! `piece` (1, string), `score` (2, float) and `type` (3, enum).

use super::config::field_error;
use crate::error::Result;

const FILE: &str = "tokenizer.model";

/// SentencePiece's piece types, which GGUF's `tokenizer.ggml.token_type` uses as they are.
pub const NORMAL: i32 = 1;
pub const UNKNOWN: i32 = 2;
pub const CONTROL: i32 = 3;
pub const USER_DEFINED: i32 = 4;
pub const UNUSED: i32 = 5;
pub const BYTE: i32 = 6;

/// One vocabulary entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub text: String,
    pub score: f32,
    pub kind: i32,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn malformed(&self, what: &str) -> crate::Error {
        field_error(FILE, "pieces", format!("malformed protobuf at byte {}: {what}", self.at))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at).ok_or_else(|| self.malformed("truncated varint"))?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8]> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.at.checked_add(len))
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.malformed("length past the end"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// Skips one field's value of this wire type.
    fn skip(&mut self, wire_type: u64) -> Result<()> {
        match wire_type {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => {
                let len = self.varint()?;
                self.take(len).map(drop)
            }
            5 => self.take(4).map(drop),
            _ => Err(self.malformed("unsupported wire type")),
        }
    }

    /// The next (field number, wire type), or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u64)>> {
        if self.at == self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        Ok(Some((key >> 3, key & 7)))
    }
}

/// Every piece of `tokenizer.model`, in id order.
pub fn read_pieces(model: &[u8]) -> Result<Vec<Piece>> {
    let mut reader = Reader { bytes: model, at: 0 };
    let mut pieces = Vec::new();
    while let Some((field, wire_type)) = reader.key()? {
        if field != 1 || wire_type != 2 {
            reader.skip(wire_type)?;
            continue;
        }
        let len = reader.varint()?;
        let mut inner = Reader { bytes: reader.take(len)?, at: 0 };
        let mut piece = Piece { text: String::new(), score: 0.0, kind: NORMAL };
        while let Some((field, wire_type)) = inner.key()? {
            match (field, wire_type) {
                (1, 2) => {
                    let len = inner.varint()?;
                    let text = inner.take(len)?;
                    piece.text = String::from_utf8(text.to_vec())
                        .map_err(|_| field_error(FILE, "pieces", format!("piece {} is not UTF-8", pieces.len())))?;
                }
                (2, 5) => {
                    let raw = inner.take(4)?;
                    piece.score = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                }
                (3, 0) => piece.kind = inner.varint()? as i32,
                (_, wire_type) => inner.skip(wire_type)?,
            }
        }
        if !(NORMAL..=BYTE).contains(&piece.kind) {
            return Err(field_error(FILE, "pieces", format!("piece {} has type {}", pieces.len(), piece.kind)));
        }
        pieces.push(piece);
    }
    if pieces.is_empty() {
        return Err(field_error(FILE, "pieces", "no pieces: not a SentencePiece model"));
    }
    Ok(pieces)
}
