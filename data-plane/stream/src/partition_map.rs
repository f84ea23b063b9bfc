//! Serde for maps keyed by partition number inside the tagged command and
//! reply enums (`#[serde(with = "crate::partition_map")]`).
//!
//! An internally tagged enum (`#[serde(tag = "type")]`) buffers its content
//! before it knows the variant, and a buffered JSON object keeps its keys as
//! strings: a `BTreeMap<PartitionId, _>` written as `{"2": 5}` cannot be read
//! back from there, because the buffer hands `"2"` to a `u32`. So these maps
//! are written as sequences of `[partition, value]` pairs, which read back
//! the same through any amount of buffering. Reading also accepts an object
//! whose keys are partition numbers or numeric strings, so a map written the
//! plain way (by hand, or by another encoder) decodes too.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

use crate::PartitionId;

/// Writes `map` as `[[partition, value], ...]`, in partition order.
pub fn serialize<S, V>(map: &BTreeMap<PartitionId, V>, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    V: Serialize,
{
    serializer.collect_seq(map)
}

/// Reads `[[partition, value], ...]` or `{"partition": value, ...}`. A
/// partition given twice is an error rather than a silent overwrite: no
/// encoder of these commands writes one.
pub fn deserialize<'de, D, V>(deserializer: D) -> Result<BTreeMap<PartitionId, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    deserializer.deserialize_any(PartitionMapVisitor(PhantomData))
}

struct PartitionMapVisitor<V>(PhantomData<V>);

impl<V> PartitionMapVisitor<V> {
    fn insert<E: de::Error>(
        map: &mut BTreeMap<PartitionId, V>,
        partition: PartitionId,
        value: V,
    ) -> Result<(), E> {
        if map.insert(partition, value).is_some() {
            return Err(E::custom(format_args!("partition {partition} given twice")));
        }
        Ok(())
    }
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for PartitionMapVisitor<V> {
    type Value = BTreeMap<PartitionId, V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[partition, value] pairs or a map keyed by partition number")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut map = BTreeMap::new();
        while let Some((partition, value)) = seq.next_element::<(PartitionId, V)>()? {
            Self::insert(&mut map, partition, value)?;
        }
        Ok(map)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = BTreeMap::new();
        while let Some((PartitionKey(partition), value)) = access.next_entry::<PartitionKey, V>()? {
            Self::insert(&mut map, partition, value)?;
        }
        Ok(map)
    }
}

/// A partition number as an object key: a number, or a string holding one
/// (what JSON object keys are).
struct PartitionKey(PartitionId);

impl<'de> Deserialize<'de> for PartitionKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PartitionKeyVisitor)
    }
}

struct PartitionKeyVisitor;

impl Visitor<'_> for PartitionKeyVisitor {
    type Value = PartitionKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a partition number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PartitionKey, E> {
        PartitionId::try_from(v)
            .map(PartitionKey)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PartitionKey, E> {
        PartitionId::try_from(v)
            .map(PartitionKey)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PartitionKey, E> {
        v.parse()
            .map(PartitionKey)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}
