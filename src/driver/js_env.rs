//! The Worker's `env` as both drivers read it: the standalone Worker's wasm exports
//! (`edge`) and the `worker` feature's `keycard::worker`. One reading of
//! variables, one configuration per isolate, one way to tell bindings apart, one way to
//! write the core's log lines, so the two cannot drift.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};

use crate::config::{Config, ConfigError};
use crate::exchange::{Binding, Bindings, Forwarding, Level, Log};

/// The isolate's configuration, validated once: the result, good or bad.
pub(crate) type IsolateConfig = Result<Rc<Config>, ConfigError>;

thread_local! {
    static CONFIG: RefCell<Option<IsolateConfig>> = const { RefCell::new(None) };
    static BINDINGS: Cell<Option<Bindings>> = const { Cell::new(None) };
}

/// A binding's value as a string: a secret or string var as it is, a TOML boolean or
/// number (which wrangler passes as JSON) in its usual spelling.
fn lookup(env: &JsValue, name: &str) -> Option<String> {
    let v = Reflect::get(env, &JsValue::from_str(name)).ok()?;
    if let Some(s) = v.as_string() {
        return Some(s);
    }
    if let Some(b) = v.as_bool() {
        return Some(b.to_string());
    }
    if let Some(n) = v.as_f64() {
        if n.fract() == 0.0 && n.abs() < 1e15 {
            return Some(format!("{}", n as i64));
        }
        return Some(n.to_string());
    }
    None
}

/// The isolate's configuration, read from `env` on the first call. The names of its
/// variables and secrets (not its bindings) are checked too, and each that keycard does
/// not read is logged then, once.
pub(crate) fn config(env: &JsValue) -> IsolateConfig {
    CONFIG.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| {
                let names: Vec<String> =
                    js_sys::Object::keys(env.unchecked_ref::<js_sys::Object>())
                        .iter()
                        .filter_map(|k| k.as_string())
                        .filter(|k| lookup(env, k).is_some())
                        .collect();
                let cfg =
                    Config::from_env(names.iter().map(String::as_str), |name| lookup(env, name));
                if let Ok(cfg) = &cfg {
                    write_logs(cfg.unknown.iter().map(|u| Log {
                        level: Level::Warn,
                        event: "unknown_variable",
                        detail: serde_json::json!({ "var": u.name, "problem": u.problem() }),
                    }));
                }
                cfg.map(Rc::new)
            })
            .clone()
    })
}

/// The bindings `cfg` names, as `env` has them, told apart on the first call. The
/// runtime gives an isolate one `env` for its whole life, as [`config`] assumes too, and
/// telling a binding's kind apart costs a few property reads across the boundary, each
/// with its name encoded again: per request, that was about 5% of the isolate's time
/// (BENCHMARKS.md).
pub(crate) fn bindings(env: &JsValue, cfg: &Config) -> Bindings {
    if let Some(b) = BINDINGS.get() {
        return b;
    }
    let b = Bindings {
        kv: binding(env, &cfg.kv_binding, Kind::Kv),
        origin_service: cfg
            .origin_service
            .as_ref()
            .map_or(Binding::Absent, |n| binding(env, n, Kind::Fetcher)),
        assets: binding(env, "ASSETS", Kind::Fetcher),
        users: binding(env, &cfg.users.binding, Kind::Objects),
        forwarding: Forwarding::Fetch,
    };
    BINDINGS.set(Some(b));
    b
}

/// Whether `value` has a method called `name`.
fn has_method(value: &JsValue, name: &str) -> bool {
    Reflect::get(value, &JsValue::from_str(name)).is_ok_and(|f| f.is_function())
}

/// The kinds of binding keycard uses, told apart by their methods.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A KV namespace: `get`, `put`, no `fetch`.
    Kv,
    /// A service binding or the assets binding: `fetch`.
    Fetcher,
    /// A Durable Object namespace: `idFromName`.
    Objects,
}

/// Whether `env` has a binding called `name` of the kind `want`.
fn binding(env: &JsValue, name: &str, want: Kind) -> Binding {
    let Ok(v) = Reflect::get(env, &JsValue::from_str(name)) else {
        return Binding::Absent;
    };
    if !v.is_object() {
        return Binding::Absent;
    }
    // `fetch` first: a service binding answers every property name with an RPC method,
    // so it would pass for any other kind.
    let kind = if has_method(&v, "fetch") {
        Some(Kind::Fetcher)
    } else if has_method(&v, "idFromName") {
        Some(Kind::Objects)
    } else if has_method(&v, "get") && has_method(&v, "put") {
        Some(Kind::Kv)
    } else {
        None
    };
    match kind == Some(want) {
        true => Binding::Present,
        false => Binding::WrongKind,
    }
}

/// Writes the core's log lines to the console.
pub(crate) fn write_logs(logs: impl IntoIterator<Item = Log>) {
    for l in logs {
        let line = JsValue::from_str(&l.line());
        match l.level {
            Level::Error => web_sys::console::error_1(&line),
            Level::Warn => web_sys::console::warn_1(&line),
        }
    }
}
