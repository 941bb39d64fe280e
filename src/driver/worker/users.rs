//! Sign out everywhere inside your own Worker: the `KeycardUsers` Durable Object class
//! and the driver's call to it.
//!
//! Both sides only carry JSON: what a call does to a user's object is
//! [`crate::users::answer`], the code the standalone Worker's class (`src/driver/entry.js`)
//! runs, and what the exchange does with the answer is the exchange's. The class is
//! reached through `fetch` (a workers-rs Durable Object has no RPC methods): the call's
//! JSON is the request body, the answer's JSON the body of a `200`; anything else is an
//! error for the exchange to handle as it handles a store error.

use wasm_bindgen::JsValue;
use worker::{durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result};

/// The key of the object's one stored value, as in the standalone Worker's class.
const STATE: &str = "state";

/// The URL of a call to an object: an object answers calls from keycard only, at any
/// URL, so this one only has to be absolute.
const CALL_URL: &str = "https://keycard-users.invalid/call";

/// One signed-in user's sessions, for sign-out everywhere: name it in your Worker
/// (`pub use keycard::worker::KeycardUsers;`; worker-build exports it in any case, as
/// it exports every class linked in) and bind it as `SESSION_USERS_BINDING` (default
/// `KEYCARD_USERS`) with a `new_sqlite_classes` migration, as `docs/rust.md` and
/// `docs/signing-out.md` say.
///
/// Its whole state is one JSON value in the object's storage. Calls come from
/// [`Keycard::serve`](super::Keycard::serve) alone: the class has no route of its own.
#[durable_object(fetch)]
pub struct KeycardUsers {
    state: worker::State,
}

impl DurableObject for KeycardUsers {
    fn new(state: worker::State, _env: Env) -> Self {
        KeycardUsers { state }
    }

    /// Carries out the call in the request's body; answers the answer's JSON. A state
    /// or call that does not read is a `500` naming what is wrong (never session data),
    /// and the state is left as it was: never a fresh start, which would bring revoked
    /// sessions back.
    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call = req.text().await?;
        let storage = self.state.storage();
        // Nothing but storage is awaited from the read to the write, and the object's
        // input gate delivers no other event while a storage operation is in flight,
        // so two calls cannot both decide on the same stored state.
        let stored = match storage.get::<String>(STATE).await {
            Ok(stored) => stored,
            Err(e) => return Response::error(format!("the stored state: {e}"), 500),
        };
        match crate::users::answer(stored.as_deref(), &call) {
            Ok((answer, state)) => {
                if let Some(state) = state {
                    storage.put(STATE, state).await?;
                }
                Response::ok(answer)
            }
            Err(e) => Response::error(e, 500),
        }
    }
}

/// Sends `call` (JSON, [`UsersCall::json`]) to the object named `object` in the
/// namespace bound as `binding`: the answer's JSON, or what went wrong.
///
/// [`UsersCall::json`]: crate::users::UsersCall::json
pub(super) async fn ask(
    env: &Env,
    binding: &str,
    object: &str,
    call: &str,
) -> std::result::Result<String, String> {
    let asked = async {
        let stub = env
            .durable_object(binding)?
            .id_from_name(object)?
            .get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(JsValue::from_str(call)));
        let mut res = stub
            .fetch_with_request(Request::new_with_init(CALL_URL, &init)?)
            .await?;
        let text = res.text().await?;
        match res.status_code() {
            200 => Ok(text),
            status => Err(worker::Error::RustError(format!("{status} {text}"))),
        }
    };
    asked.await.map_err(|e: worker::Error| e.to_string())
}
