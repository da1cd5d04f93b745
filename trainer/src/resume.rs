//! The rules for continuing a run (`trainer --resume`), in one place: which settings may change,
//! how the saved configuration and the command line are merged, and what counts as a change.

use anyhow::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A setting that differs: its name, the run's value and the asked one.
pub type Change = (String, Value, Value);

/// Settings a resumed run may change: they do not alter what the run trains (`epochs` only
/// extends it; `out`, the run folder, and `cache` are places; `backend` and `device` are the same
/// arithmetic elsewhere, up to rounding; `threshold_rule` only reads the validation scores after).
pub const RESUMABLE: [&str; 6] = ["epochs", "backend", "device", "out", "cache", "threshold_rule"];

/// The run's saved configuration (a `RunConfig`) with the resumable settings the user gave (`given`, by setting
/// name) taken from `asked`; `out` always comes from `asked`, and a new `backend` brings its own
/// `device` (the run's adapter belongs to the run's backend). Also returns the other settings the
/// user gave whose values differ from the run's, (name, the run's, asked), which the caller
/// refuses.
pub fn merge<T: Serialize + DeserializeOwned>(
    saved: &T,
    asked: &T,
    given: impl Fn(&str) -> bool,
) -> Result<(T, Vec<Change>)> {
    let conflicts: Vec<_> =
        changed_settings(saved, asked)?.into_iter().filter(|(name, ..)| given(name)).collect();
    let mut merged = serde_json::to_value(saved)?;
    let asked = serde_json::to_value(asked)?;
    for name in RESUMABLE {
        let take = match name {
            "out" => true,
            "device" => given("device") || given("backend"),
            _ => given(name),
        };
        if take {
            take_setting(&mut merged, &asked, name);
        }
    }
    Ok((serde_json::from_value(merged)?, conflicts))
}

/// Copies the setting `name`, at whatever depth it sits, from `from` into `into` (both the same
/// configuration's shape; field names are unique across its nesting).
fn take_setting(into: &mut Value, from: &Value, name: &str) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        for (key, value) in into.iter_mut() {
            match from.get(key) {
                Some(new) if key == name => *value = new.clone(),
                Some(new) => take_setting(value, new, name),
                None => {}
            }
        }
    }
}

/// The settings (by field name, with both values) in which `a` and `b` differ, leaving out the
/// `RESUMABLE` ones. Nested configurations are compared field by field; their field names are
/// unique, so a name alone says which setting differs.
pub fn changed_settings<T: Serialize>(a: &T, b: &T) -> Result<Vec<Change>> {
    fn walk(a: &Value, b: &Value, name: &str, out: &mut Vec<Change>) {
        match (a, b) {
            // A resumable setting may change as a whole, whatever its shape.
            _ if RESUMABLE.contains(&name) => {}
            (Value::Object(a), Value::Object(b)) => {
                for (key, va) in a {
                    walk(va, b.get(key).unwrap_or(&Value::Null), key, out);
                }
                for (key, vb) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                    walk(&Value::Null, vb, key, out);
                }
            }
            _ if a != b => out.push((name.to_string(), a.clone(), b.clone())),
            _ => {}
        }
    }
    let mut out = vec![];
    walk(&serde_json::to_value(a)?, &serde_json::to_value(b)?, "", &mut out);
    Ok(out)
}
