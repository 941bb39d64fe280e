//! The JSON of calls, answers and the stored state, written and read through
//! `serde_json::Value` by hand rather than with serde's derives: the derives' visitors
//! would add tens of kilobytes to the wasm for a handful of small objects, and `Value`
//! is in the wasm already (BENCHMARKS.md).
//!
//! | what | JSON |
//! | --- | --- |
//! | [`Call`] | `{"v":1,"now":..,"horizon":..,"caller":{"key","handle","created","expires"},"op":"see"\|"list"\|"revoke"\|"forget"\|"bind"\|"prove", ..}`; `see`, `list` and `bind` add `"device":{"agent","country"}`, `see` and `list` add `"touch_after"`, `see` adds `"fresh"` and may add `"replaces"`, `"follows":true` and `"unproven":true`, `revoke` adds `"which":"caller"\|"others"\|"all"\|{"handles":[..]}\|{"keys":[..]}`, `bind` adds `"bound":binding` and may add `"replaces"` and `"follows":true`, `prove` adds `"challenge_ms"` and `"until"` |
//! | [`ObjectAnswer`] | `{"caller_revoked":bool}`, and `"caller_regenerated":true` for a caller revoked by a `regenerate` under a minute ago, with `"keys":[..]` (the sessions it revoked), for `list` `"sessions":[entry..]`, for `see`, `bind` and `prove` the caller's `"bound":binding` and, for a refused `bind` or `prove`, `"device_refused":"bound"\|"unbound"\|"used"` |
//! | [`State`] | `{"v":1,"live":[entry..],"revoked":{"<key>":<until>,..}}`, `"cutoff":{"at":..,"except":<key>\|null}` after an `Others` or `All`, and `"regenerated":{"<key>":<when>,..}` for the keys a `regenerate` replaced in the last minute |
//! | entry | `{"key","handle","created","expires","last_seen","device":{"agent","country"}}`, `"signed_out":true` for an entry whose user field was removed, and `"bound":binding` for one bound to a device |
//! | binding | `{"key","thumb","last"}`, and `"until"` once known: the bound key's stored form, its thumbprint, the time (ms) of the last challenge answered, and when (s) the latest short-lived cookie issued to it expires, as in a session's KV record |

use serde_json::{json, Map, Value};

use super::{
    Call, Caller, Cutoff, Device, DeviceRefusal, Entry, ObjectAnswer, Op, State, Which, VERSION,
};
use crate::dbsc::Binding;

type Obj = Map<String, Value>;

fn parse_object(text: &str, what: &str) -> Result<Obj, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("{what} is not a JSON object")),
    }
}

fn object<'a>(v: Option<&'a Value>, what: &str) -> Result<&'a Obj, String> {
    v.and_then(Value::as_object)
        .ok_or_else(|| format!("{what} is not an object"))
}

/// A map of keys to times (`revoked`, `regenerated`).
fn timed_keys(v: Option<&Value>, what: &str) -> Result<Obj, String> {
    let keys = object(v, what)?;
    match keys.iter().find(|(_, at)| !at.is_u64()) {
        Some((k, _)) => Err(format!("{what} {k:?} has no time")),
        None => Ok(keys.clone()),
    }
}

fn string(o: &Obj, name: &str) -> Result<String, String> {
    o.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{name} is not a string"))
}

fn number(o: &Obj, name: &str) -> Result<u64, String> {
    o.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{name} is not a whole number"))
}

/// A string that may be absent.
fn optional_string(o: &Obj, name: &str) -> Option<String> {
    o.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A boolean that may be absent (`false`).
fn flag(o: &Obj, name: &str) -> bool {
    o.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// A whole number that may be absent (0), as a field added since the first version is:
/// an object keeps what an older keycard wrote, and may answer an older one's call.
fn number_or_zero(o: &Obj, name: &str) -> Result<u64, String> {
    match o.get(name) {
        None => Ok(0),
        Some(_) => number(o, name),
    }
}

fn strings(v: &Value) -> Result<Vec<String>, String> {
    v.as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<_>>()
        })
        .ok_or_else(|| "not a list of strings".to_owned())
}

fn version(o: &Obj, what: &str) -> Result<(), String> {
    match number(o, "v")? {
        VERSION => Ok(()),
        v => Err(format!("{what} version {v} is not {VERSION}")),
    }
}

impl Device {
    fn to_value(&self) -> Value {
        json!({ "agent": self.agent, "country": self.country })
    }

    fn from_value(v: Option<&Value>) -> Result<Device, String> {
        let o = object(v, "device")?;
        Ok(Device {
            agent: string(o, "agent")?,
            country: optional_string(o, "country"),
        })
    }
}

/// A binding as the object keeps it: the same fields as a session's KV record.
fn binding_value(b: &Binding) -> Value {
    let mut v = json!({ "key": b.key, "thumb": b.thumbprint, "last": b.last_ms });
    if b.until > 0 {
        v["until"] = b.until.into();
    }
    v
}

fn binding(v: Option<&Value>) -> Result<Option<Binding>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let o = object(Some(v), "bound")?;
    Ok(Some(Binding {
        key: string(o, "key")?,
        thumbprint: string(o, "thumb")?,
        last_ms: number(o, "last")?,
        until: number_or_zero(o, "until")?,
    }))
}

impl Entry {
    fn to_value(&self) -> Value {
        let mut v = json!({
            "key": self.key,
            "handle": self.handle,
            "created": self.created,
            "expires": self.expires,
            "last_seen": self.last_seen,
            "device": self.device.to_value(),
        });
        if self.signed_out {
            v["signed_out"] = true.into();
        }
        if let Some(b) = &self.bound {
            v["bound"] = binding_value(b);
        }
        v
    }

    fn from_value(v: &Value) -> Result<Entry, String> {
        let o = object(Some(v), "entry")?;
        Ok(Entry {
            key: string(o, "key")?,
            handle: string(o, "handle")?,
            created: number(o, "created")?,
            expires: number(o, "expires")?,
            last_seen: number(o, "last_seen")?,
            device: Device::from_value(o.get("device"))?,
            signed_out: o
                .get("signed_out")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            bound: binding(o.get("bound"))?,
        })
    }
}

fn entries(v: Option<&Value>) -> Result<Vec<Entry>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Entry::from_value).collect(),
        Some(_) => Err("entries are not a list".into()),
    }
}

impl Call {
    /// The call's JSON.
    pub fn to_json(&self) -> String {
        let c = &self.caller;
        let mut o = json!({
            "v": VERSION,
            "now": self.now,
            "horizon": self.horizon,
            "caller": { "key": c.key, "handle": c.handle, "created": c.created, "expires": c.expires },
        });
        let (name, more) = match &self.op {
            Op::See {
                device,
                touch_after,
                replaces,
                follows,
                fresh,
                unproven,
            } => {
                let mut see = json!({ "device": device.to_value(), "touch_after": touch_after, "replaces": replaces, "fresh": fresh });
                if *unproven {
                    see["unproven"] = true.into();
                }
                if *follows {
                    see["follows"] = true.into();
                }
                ("see", see)
            }
            Op::List {
                device,
                touch_after,
            } => (
                "list",
                json!({ "device": device.to_value(), "touch_after": touch_after }),
            ),
            Op::Revoke { which } => {
                let which = match which {
                    Which::Caller => json!("caller"),
                    Which::Others => json!("others"),
                    Which::All => json!("all"),
                    Which::Handles(h) => json!({ "handles": h }),
                    Which::Keys(k) => json!({ "keys": k }),
                };
                ("revoke", json!({ "which": which }))
            }
            Op::Forget => ("forget", json!({})),
            Op::Bind {
                device,
                binding,
                replaces,
                follows,
            } => {
                let mut bind =
                    json!({ "device": device.to_value(), "bound": binding_value(binding) });
                if let Some(old) = replaces {
                    bind["replaces"] = old.as_str().into();
                }
                if *follows {
                    bind["follows"] = true.into();
                }
                ("bind", bind)
            }
            Op::Prove {
                challenge_ms,
                until,
            } => (
                "prove",
                json!({ "challenge_ms": challenge_ms, "until": until }),
            ),
        };
        let map = o.as_object_mut().expect("an object");
        map.insert("op".into(), name.into());
        if let Value::Object(more) = more {
            map.extend(more);
        }
        o.to_string()
    }

    /// Reads a call's JSON.
    pub fn parse(text: &str) -> Result<Call, String> {
        let o = parse_object(text, "call")?;
        version(&o, "call")?;
        let c = object(o.get("caller"), "caller")?;
        let caller = Caller {
            key: string(c, "key")?,
            handle: string(c, "handle")?,
            created: number(c, "created")?,
            expires: number(c, "expires")?,
        };
        let op = match string(&o, "op")?.as_str() {
            "see" => Op::See {
                device: Device::from_value(o.get("device"))?,
                touch_after: number(&o, "touch_after")?,
                replaces: optional_string(&o, "replaces"),
                follows: flag(&o, "follows"),
                fresh: flag(&o, "fresh"),
                unproven: flag(&o, "unproven"),
            },
            "list" => Op::List {
                device: Device::from_value(o.get("device"))?,
                touch_after: number(&o, "touch_after")?,
            },
            "revoke" => Op::Revoke {
                which: match o.get("which") {
                    Some(Value::String(w)) if w == "caller" => Which::Caller,
                    Some(Value::String(w)) if w == "others" => Which::Others,
                    Some(Value::String(w)) if w == "all" => Which::All,
                    Some(Value::Object(w)) => match (w.get("handles"), w.get("keys")) {
                        (Some(hs), None) => Which::Handles(strings(hs)?),
                        (None, Some(ks)) => Which::Keys(strings(ks)?),
                        _ => return Err("which has neither handles nor keys".into()),
                    },
                    _ => return Err("which is not caller, others, all, handles or keys".into()),
                },
            },
            "forget" => Op::Forget,
            "bind" => Op::Bind {
                device: Device::from_value(o.get("device"))?,
                binding: binding(o.get("bound"))?.ok_or("bind has no binding")?,
                replaces: optional_string(&o, "replaces"),
                follows: flag(&o, "follows"),
            },
            "prove" => Op::Prove {
                challenge_ms: number(&o, "challenge_ms")?,
                until: number_or_zero(&o, "until")?,
            },
            other => return Err(format!("unknown op {other:?}")),
        };
        Ok(Call {
            now: number(&o, "now")?,
            horizon: number(&o, "horizon")?,
            caller,
            op,
        })
    }
}

impl ObjectAnswer {
    /// The answer's JSON.
    pub fn to_json(&self) -> String {
        let mut o = json!({ "caller_revoked": self.caller_revoked });
        if self.caller_regenerated {
            o["caller_regenerated"] = true.into();
        }
        if !self.keys.is_empty() {
            o["keys"] = json!(self.keys);
        }
        if !self.sessions.is_empty() {
            let list: Vec<Value> = self.sessions.iter().map(Entry::to_value).collect();
            o["sessions"] = Value::Array(list);
        }
        if let Some(b) = &self.bound {
            o["bound"] = binding_value(b);
        }
        if let Some(r) = self.device_refused {
            o["device_refused"] = r.as_str().into();
        }
        o.to_string()
    }

    /// Reads an answer's JSON.
    pub fn parse(text: &str) -> Result<ObjectAnswer, String> {
        let o = parse_object(text, "answer")?;
        Ok(ObjectAnswer {
            caller_revoked: o
                .get("caller_revoked")
                .and_then(Value::as_bool)
                .ok_or("caller_revoked is not a boolean")?,
            caller_regenerated: match o.get("caller_regenerated") {
                None => false,
                Some(b) => b.as_bool().ok_or("caller_regenerated is not a boolean")?,
            },
            keys: match o.get("keys") {
                None => Vec::new(),
                Some(ks) => strings(ks)?,
            },
            sessions: entries(o.get("sessions"))?,
            bound: binding(o.get("bound"))?,
            device_refused: match o.get("device_refused").and_then(Value::as_str) {
                None => None,
                Some("bound") => Some(DeviceRefusal::Bound),
                Some("unbound") => Some(DeviceRefusal::Unbound),
                Some("used") => Some(DeviceRefusal::Used),
                Some(other) => return Err(format!("unknown device_refused {other:?}")),
            },
        })
    }
}

impl State {
    /// The state's JSON, as stored.
    pub fn to_json(&self) -> String {
        let live: Vec<Value> = self.live.iter().map(Entry::to_value).collect();
        let mut o = json!({ "v": VERSION, "live": live, "revoked": self.revoked });
        if let Some(k) = &self.cutoff {
            o["cutoff"] = json!({ "at": k.at, "except": k.except });
        }
        if !self.regenerated.is_empty() {
            o["regenerated"] = Value::Object(self.regenerated.clone());
        }
        o.to_string()
    }

    /// Reads a stored state.
    pub fn parse(text: &str) -> Result<State, String> {
        let o = parse_object(text, "state")?;
        version(&o, "state")?;
        let revoked = timed_keys(o.get("revoked"), "revoked")?;
        let regenerated = match o.get("regenerated") {
            None => Map::new(),
            some => timed_keys(some, "regenerated")?,
        };
        let cutoff = match o.get("cutoff") {
            None => None,
            Some(k) => {
                let k = object(Some(k), "cutoff")?;
                Some(Cutoff {
                    at: number(k, "at")?,
                    except: optional_string(k, "except"),
                })
            }
        };
        Ok(State {
            live: entries(o.get("live"))?,
            revoked,
            cutoff,
            regenerated,
        })
    }
}
