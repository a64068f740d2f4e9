//! Vectors kept in the blob store between tries of one processing attempt,
//! so a job redelivered after EMBED committed (a worker killed during INDEX,
//! the index busy) does not pay for the model again. A fingerprint of the
//! model and every embedded text guards the reuse: different chunking or a
//! different model is a miss, never wrong vectors.
//!
//! Layout: `FOLIOEMB1`, the 32-byte fingerprint, the vector count and the
//! dimension as little-endian u32, then the vectors as little-endian f32.

use bytes::{BufMut as _, Bytes, BytesMut};
use sha2::{Digest as _, Sha256};

const MAGIC: &[u8] = b"FOLIOEMB1";

/// What the vectors were made from: the model and the texts, in order.
pub fn fingerprint(model: &str, texts: &[String]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in std::iter::once(model).chain(texts.iter().map(String::as_str)) {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// The stored form of `vectors` (all of one dimension).
pub fn encode(fingerprint: &[u8; 32], vectors: &[Vec<f32>]) -> Bytes {
    let dimension = vectors.first().map_or(0, Vec::len);
    let mut out = BytesMut::with_capacity(MAGIC.len() + 40 + vectors.len() * dimension * 4);
    out.put_slice(MAGIC);
    out.put_slice(fingerprint);
    out.put_u32_le(vectors.len() as u32);
    out.put_u32_le(dimension as u32);
    for value in vectors.iter().flatten() {
        out.put_f32_le(*value);
    }
    out.freeze()
}

/// The vectors in `stored` if they were made from `fingerprint`, and are
/// `count` vectors of `dimension`; None for anything else.
pub fn decode(stored: &[u8], fingerprint: &[u8; 32], count: usize, dimension: usize) -> Option<Vec<Vec<f32>>> {
    let rest = stored.strip_prefix(MAGIC)?;
    let (stored_fingerprint, rest) = rest.split_first_chunk::<32>()?;
    let (stored_count, rest) = rest.split_first_chunk::<4>()?;
    let (stored_dimension, rest) = rest.split_first_chunk::<4>()?;
    if stored_fingerprint != fingerprint
        || u32::from_le_bytes(*stored_count) as usize != count
        || u32::from_le_bytes(*stored_dimension) as usize != dimension
        || rest.len() != count * dimension * 4
    {
        return None;
    }
    let values: Vec<f32> = rest.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Some(values.chunks(dimension.max(1)).map(<[f32]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_come_back_only_for_the_same_model_texts_and_shape() {
        let texts = vec!["one".to_owned(), "two".to_owned()];
        let print = fingerprint("model-a", &texts);
        let vectors = vec![vec![0.5, -1.25, 3.0], vec![f32::MIN_POSITIVE, 0.0, -0.0]];
        let stored = encode(&print, &vectors);
        assert_eq!(decode(&stored, &print, 2, 3), Some(vectors));

        assert_eq!(decode(&stored, &fingerprint("model-b", &texts), 2, 3), None);
        assert_eq!(
            decode(&stored, &fingerprint("model-a", &["one".into(), "three".into()]), 2, 3),
            None
        );
        // Moving a boundary between texts changes the fingerprint.
        assert_ne!(print, fingerprint("model-a", &["on".into(), "etwo".into()]));
        assert_eq!(decode(&stored, &print, 3, 3), None);
        assert_eq!(decode(&stored, &print, 2, 4), None);
        assert_eq!(decode(&stored[..stored.len() - 1], &print, 2, 3), None);
        assert_eq!(decode(b"not stored vectors", &print, 2, 3), None);
    }
}
