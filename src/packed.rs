//! Numeric arrays saved in JSON as the base64 of their little-endian bytes: `"u32le:<base64>"`,
//! `"u64le:<base64>"`, `"u8:<base64>"`, `"f64le:<base64>"` (serde `with` modules [`u8s`],
//! [`u32s`], [`u64s`], [`f64s`]). The bytes are the exact values, and decoding them costs a few
//! instructions a value where decimal JSON took ~460: a shipped surrogate's trees (52,000
//! numbers, `quality::surrogate::forest`) loaded in 24 M instructions as decimal arrays, which
//! every process of a sharded sweep paid; a shard's exact state (`sweep::shard`, its frontier
//! and plot sample) took 1.6 M instructions to write and 1.75 M to read as decimal strings.
//! Plain JSON arrays of numbers are read too (older files).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// A fixed-width number saved by its little-endian bytes.
pub trait Le: Sized + Copy + for<'de> serde::Deserialize<'de> {
    const TAG: &'static str;
    const WIDTH: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! le {
    ($t:ty, $tag:literal) => {
        impl Le for $t {
            const TAG: &'static str = $tag;
            const WIDTH: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> $t {
                let mut b = [0; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
        }
    };
}
le!(u8, "u8:");
le!(u32, "u32le:");
le!(u64, "u64le:");
le!(f64, "f64le:");

/// `values` as a packed string: the tag, then the base64 of their little-endian bytes.
pub fn encode<T: Le>(values: &[T]) -> String {
    let mut bytes = Vec::with_capacity(values.len() * T::WIDTH);
    for &x in values {
        x.put(&mut bytes);
    }
    let mut text = String::with_capacity(T::TAG.len() + bytes.len().div_ceil(3) * 4);
    text.push_str(T::TAG);
    STANDARD.encode_string(&bytes, &mut text);
    text
}

/// The values of a packed string, or why it is not one.
pub fn decode<T: Le>(text: &str) -> Result<Vec<T>, String> {
    let body = text
        .strip_prefix(T::TAG)
        .ok_or_else(|| format!("a packed array must start with `{}`", T::TAG))?;
    let bytes = STANDARD.decode(body).map_err(|e| format!("packed array: {e}"))?;
    if bytes.len() % T::WIDTH != 0 {
        return Err(format!(
            "packed array of {} bytes is not a whole number of {}-byte values",
            bytes.len(),
            T::WIDTH
        ));
    }
    Ok(bytes.chunks_exact(T::WIDTH).map(T::get).collect())
}

fn serialize<T: Le, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&encode(v))
}

struct Packed<T>(PhantomData<T>);

impl<'de, T: Le> Visitor<'de> for Packed<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an array of numbers or a string `{}<base64>`", T::TAG)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
        decode(v).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(x) = seq.next_element()? {
            out.push(x);
        }
        Ok(out)
    }
}

fn deserialize<'de, T: Le, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    d.deserialize_any(Packed::<T>(PhantomData))
}

macro_rules! with {
    ($name:ident, $t:ty) => {
        #[doc = concat!("`#[serde(with = ...)]` for a `Vec<", stringify!($t), ">` saved packed.")]
        pub mod $name {
            pub fn serialize<S: serde::Serializer>(v: &[$t], s: S) -> Result<S::Ok, S::Error> {
                super::serialize(v, s)
            }
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<$t>, D::Error> {
                super::deserialize(d)
            }
        }
    };
}
with!(u8s, u8);
with!(u32s, u32);
with!(u64s, u64);
with!(f64s, f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_exactly_and_bad_strings_are_refused() {
        let f = [0.0, -0.0, 1e-300, f64::MAX, f64::INFINITY, f64::NAN, 0.1 + 0.2];
        let back: Vec<f64> = decode(&encode(&f)).unwrap();
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            f.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            decode::<u64>(&encode(&[u64::MAX, 0, 7])).unwrap(),
            [u64::MAX, 0, 7]
        );
        assert_eq!(decode::<u8>(&encode(&[0u8, 1, 255])).unwrap(), [0, 1, 255]);
        assert_eq!(encode::<u32>(&[]), "u32le:");
        assert!(
            decode::<u64>(&encode(&[1.0f64]))
                .unwrap_err()
                .contains("`u64le:`")
        );
        assert!(decode::<u64>("u64le:AA*A").is_err());
        assert!(decode::<u64>("u64le:AAAA").unwrap_err().contains("whole number"));
    }
}
