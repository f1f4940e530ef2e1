//! The values a plan is written in: byte sizes (`"4KiB"`), buffer sizes (`"default"` or a
//! size), durations (`"200ms"`) and message counts, and single values or lists (a list makes
//! a case dimension).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A message size, a buffer size, or a byte total: an integer or a string like `"4KiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

pub(super) const SIZE_HELP: &str =
    "a number of bytes, optionally with a unit: B, KiB, MiB, GiB, KB, MB, GB (e.g. 64, \"4KiB\")";

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit() && c != '_')
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: u64 = number
            .replace('_', "")
            .parse()
            .map_err(|_| format!("bad size `{text}`: expected {SIZE_HELP}"))?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => {
                return Err(format!(
                    "bad size `{text}`: unknown unit `{}`; expected {SIZE_HELP}",
                    unit.trim()
                ));
            }
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{text}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_HELP)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("bad size {v}: sizes cannot be negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A buffer size option: `"default"` (leave the kernel's) or a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BufferSize {
    /// The kernel's default.
    Default,
    /// This many bytes, asked of the kernel (which may round or double it).
    Bytes(u64),
}

impl BufferSize {
    /// The size asked for, if any.
    pub fn bytes(self) -> Option<u64> {
        match self {
            BufferSize::Default => None,
            BufferSize::Bytes(n) => Some(n),
        }
    }
}

impl<'de> Deserialize<'de> for BufferSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BufferVisitor;
        impl Visitor<'_> for BufferVisitor {
            type Value = BufferSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "\"default\" or {SIZE_HELP}")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<BufferSize, E> {
                ByteSize::deserialize(de::value::I64Deserializer::<E>::new(v)).map(|b| BufferSize::Bytes(b.0))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<BufferSize, E> {
                Ok(BufferSize::Bytes(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BufferSize, E> {
                if v == "default" {
                    return Ok(BufferSize::Default);
                }
                v.parse::<ByteSize>()
                    .map(|b| BufferSize::Bytes(b.0))
                    .map_err(|e| E::custom(format!("{e}, or \"default\"")))
            }
        }
        deserializer.deserialize_any(BufferVisitor)
    }
}

/// A phase length: a time (`"200ms"`, `"1s"`) or a message count (`100000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// Run for this long.
    Time(#[serde(with = "duration_ns")] Duration),
    /// Run this many messages (round trips for request/reply scenarios).
    Messages(u64),
}

pub(super) mod duration_ns {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_nanos() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_nanos)
    }
}

/// A duration written as text in a plan (`"200ms"`, `"1s"`, `"2m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationText(pub Duration);

impl Serialize for DurationText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map(DurationText).map_err(|e| {
            de::Error::custom(format!(
                "bad duration `{text}`: {e}; expected e.g. \"200ms\", \"1s\", \"2m\""
            ))
        })
    }
}

/// `warmup` accepts a duration or a message count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AmountText(pub(super) Amount);

impl Serialize for AmountText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Amount::Time(d) => DurationText(d).serialize(s),
            Amount::Messages(n) => s.serialize_u64(n),
        }
    }
}

impl<'de> Deserialize<'de> for AmountText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl Visitor<'_> for AmountVisitor {
            type Value = AmountText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"200ms\" or a message count like 1000")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AmountText, E> {
                u64::try_from(v)
                    .map(|n| AmountText(Amount::Messages(n)))
                    .map_err(|_| E::custom("a message count cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AmountText, E> {
                DurationText::deserialize(de::value::StrDeserializer::<E>::new(v))
                    .map(|d| AmountText(Amount::Time(d.0)))
            }
        }
        deserializer.deserialize_any(AmountVisitor)
    }
}

/// One value or a list of values; a list makes the key a case dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// Several values, one case each.
    Many(Vec<T>),
}

/// Deserializes a single value or a list, keeping the element type's own error messages
/// (an untagged enum would replace them with "data did not match any variant").
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        use serde::de::value::{MapAccessDeserializer, StrDeserializer};
        struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element()? {
                    values.push(v);
                }
                Ok(OneOrMany::Many(values))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(StrDeserializer::<E>::new(v)).map(OneOrMany::One)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
    }
}

impl<T> OneOrMany<T> {
    /// The values, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v).iter(),
            OneOrMany::Many(v) => v.iter(),
        }
    }
}

impl<T: Clone> OneOrMany<T> {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}
