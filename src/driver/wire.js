// Reading the core's wire form (`Wire` in src/exchange/wire.rs): a plan's forwarding
// instructions, then its header edits, applied in place. Its own module so that
// tests/e2e/driver-wire.test.mjs checks it against the core's exact text without a
// Worker; src/driver/entry.js imports it, and scripts/build.sh bundles both.
//
// A line this reader does not expect (an edit without a value, an instruction after the
// edits, an unknown tag) throws: the core never writes one, so a change that starts to
// must fail its tests, never drop a header edit or an instruction quietly.

/** Where the line of `wire` that starts at `at` ends: its newline, or the text's end. */
function lineEnd(wire, at) {
  const end = wire.indexOf("\n", at);
  return end === -1 ? wire.length : end;
}

/** Applies the header edits of `wire` (the core's wire form), from the line at `at`
 * on, to `headers`: `-name` deletes, `=name:value` sets, `+name:value` appends. Read
 * in place with `indexOf`, with no array of lines: names never hold `:`. */
export function applyEdits(headers, wire, at = 0) {
  while (at < wire.length) {
    const end = lineEnd(wire, at);
    const tag = wire[at];
    if (tag === "-") headers.delete(wire.slice(at + 1, end));
    else if (tag === "=" || tag === "+") {
      const colon = wire.indexOf(":", at);
      if (colon === -1 || colon > end) throw new Error("a header edit without a value");
      const name = wire.slice(at + 1, colon);
      const value = wire.slice(colon + 1, end);
      if (tag === "=") headers.set(name, value);
      else headers.append(name, value);
    } else if (at !== end) throw new Error(`not a header edit: ${JSON.stringify(tag)}`);
    at = end + 1;
  }
}

/** The tags of a plan's forwarding instructions. */
const INSTRUCTIONS = new Set(["U", "S", "T", "B", "Q"]);

/** The forwarding instructions at the head of a plan (its lines before the first
 * header edit), by their tag, and where its edits start. */
export function readPlan(wire) {
  const rest = {};
  let at = 0;
  while (at < wire.length) {
    const tag = wire[at];
    if (tag === "-" || tag === "=" || tag === "+") break;
    if (!INSTRUCTIONS.has(tag)) throw new Error(`not a forwarding instruction: ${JSON.stringify(tag)}`);
    const end = lineEnd(wire, at);
    rest[tag] = wire.slice(at + 1, end);
    at = end + 1;
  }
  return { wire, rest, edits: at };
}
