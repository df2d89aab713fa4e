//! Small serde helpers for lenient input: `null` where a list or object belongs means "absent".

use serde::{Deserialize, Deserializer};

/// Deserializes `null` (or a missing field, with `#[serde(default)]`) as `T::default()`.
pub fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default, Debug)]
    struct Holder {
        #[serde(default, deserialize_with = "null_default")]
        items: Vec<u8>,
    }

    #[test]
    fn null_and_missing_become_default() {
        let null: Holder = serde_json::from_str(r#"{"items":null}"#).unwrap();
        let missing: Holder = serde_json::from_str("{}").unwrap();
        let present: Holder = serde_json::from_str(r#"{"items":[1,2]}"#).unwrap();
        assert!(null.items.is_empty());
        assert!(missing.items.is_empty());
        assert_eq!(present.items, vec![1, 2]);
    }
}
