//! Pretty JSON in a document's own key order, for the files `signet
//! connect` edits by hand-off from their owners.
//!
//! serde_json's map (without its `preserve_order` feature, which would
//! change every reply the daemon serialises) sorts keys, so a file read
//! into a `Value` and written back would come out alphabetised. The edits
//! are made on `Value`s all the same; only the writing looks at the
//! original text: [`Layout`] records the key order of every object in it,
//! and [`pretty`] writes each object's keys in that order, keys the
//! original lacked last (in [`NEW_KEY_ORDER`], then by name). An unedited
//! 2-space file comes back byte for byte.

use std::fmt::Write as _;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Keys of objects we add, in the order Claude Code's documentation
/// writes them (`{"type": "command", "command": …, "timeout": …}`).
pub const NEW_KEY_ORDER: [&str; 7] = ["type", "command", "args", "env", "url", "timeout", "hooks"];

/// The key order of a JSON document: for an object its keys (each with
/// the layout of its value), for an array its items.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layout {
    keys: Vec<(String, Layout)>,
    items: Vec<Layout>,
}

impl Layout {
    /// The layout of a JSON text (empty when it does not parse).
    pub fn of(text: &str) -> Layout {
        serde_json::from_str(text).unwrap_or_default()
    }

    fn key(&self, k: &str) -> Option<&Layout> {
        self.keys.iter().find(|(n, _)| n == k).map(|(_, l)| l)
    }
}

impl<'de> Deserialize<'de> for Layout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Layout, D::Error> {
        struct LayoutVisitor;
        impl<'de> Visitor<'de> for LayoutVisitor {
            type Value = Layout;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Layout, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Layout>()? {
                    // A repeated key keeps its first place (as in
                    // JavaScript, which Claude Code is written in).
                    match keys
                        .iter_mut()
                        .find(|(n, _): &&mut (String, Layout)| *n == k)
                    {
                        Some(slot) => slot.1 = v,
                        None => keys.push((k, v)),
                    }
                }
                Ok(Layout {
                    keys,
                    items: Vec::new(),
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Layout, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Layout>()? {
                    items.push(item);
                }
                Ok(Layout {
                    keys: Vec::new(),
                    items,
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Layout, E> {
                Ok(Layout::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Layout, E> {
                Ok(Layout::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Layout, E> {
                Ok(Layout::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Layout, E> {
                Ok(Layout::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Layout, E> {
                Ok(Layout::default())
            }
            fn visit_unit<E>(self) -> Result<Layout, E> {
                Ok(Layout::default())
            }
        }
        d.deserialize_any(LayoutVisitor)
    }
}

/// `value` as 2-space indented JSON with a final newline, its objects'
/// keys in `layout`'s order where it has them.
pub fn pretty(value: &Value, layout: &Layout) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Some(layout), 0);
    out.push('\n');
    out
}

fn rank(key: &str) -> usize {
    NEW_KEY_ORDER
        .iter()
        .position(|k| *k == key)
        .unwrap_or(NEW_KEY_ORDER.len())
}

fn write_value(out: &mut String, value: &Value, layout: Option<&Layout>, depth: usize) {
    let pad = |out: &mut String, depth: usize| out.push_str(&"  ".repeat(depth));
    match value {
        Value::Object(map) if !map.is_empty() => {
            let known: Vec<&str> = layout
                .map(|l| l.keys.iter().map(|(k, _)| k.as_str()).collect())
                .unwrap_or_default();
            let mut keys: Vec<&str> = known
                .iter()
                .copied()
                .filter(|k| map.contains_key(*k))
                .collect();
            let mut new: Vec<&str> = map
                .keys()
                .map(String::as_str)
                .filter(|k| !known.contains(k))
                .collect();
            new.sort_by_key(|k| (rank(k), *k));
            keys.extend(new);
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                pad(out, depth + 1);
                out.push_str(&Value::String(k.to_string()).to_string());
                out.push_str(": ");
                if let Some(v) = map.get(*k) {
                    write_value(out, v, layout.and_then(|l| l.key(k)), depth + 1);
                }
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            pad(out, depth);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, depth + 1);
                write_value(out, item, layout.and_then(|l| l.items.get(i)), depth + 1);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, depth);
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pretty_file_comes_back_byte_for_byte() {
        let text = r#"{
  "zeta": 1,
  "alpha": {
    "y": [
      {
        "b": "two \"quoted\"",
        "a": null
      },
      [],
      {}
    ],
    "x": -1.5e-7
  },
  "mid": true
}
"#;
        let value: Value = serde_json::from_str(text).expect("json");
        assert_eq!(pretty(&value, &Layout::of(text)), text);
    }

    #[test]
    fn without_a_layout_it_matches_serde_json() {
        let value = json!({"b": [1, {"d": "é\n", "c": []}], "a": {}});
        let expected = serde_json::to_string_pretty(&value).expect("pretty") + "\n";
        assert_eq!(pretty(&value, &Layout::default()), expected);
    }

    #[test]
    fn new_keys_follow_the_known_ones_in_claude_codes_order() {
        let text = r#"{"model": "opus", "env": {}}"#;
        let value = json!({"model": "opus", "env": {}, "hooks": {"SessionEnd": [
            {"hooks": [{"timeout": 60, "command": "c", "type": "command"}]}
        ]}, "aaa": 1});
        let out = pretty(&value, &Layout::of(text));
        let order: Vec<usize> = [
            "\"model\"",
            "\"env\"",
            "\"hooks\"",
            "\"type\"",
            "\"command\"",
            "\"timeout\"",
            "\"aaa\"",
        ]
        .iter()
        .map(|k| out.find(k).expect(k))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_its_last_value() {
        let text = r#"{"a": 1, "b": 2, "a": 3}"#;
        let value: Value = serde_json::from_str(text).expect("json");
        assert_eq!(
            pretty(&value, &Layout::of(text)),
            "{\n  \"a\": 3,\n  \"b\": 2\n}\n"
        );
    }
}
