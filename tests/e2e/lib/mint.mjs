// An independent implementation of keycard's signed cookie format (docs/formats.md,
// "Cookie"), used to mint cookies the edge should refuse: expired, issued in the future,
// signed for another cookie name, a device-bound session's expired short-lived cookie.
// It also proves docs/formats.md describes the formats exactly: a cookie minted here with
// the right inputs must verify at the edge.
import crypto from "node:crypto";

const hkdf = (secret, info, len = 32) =>
  Buffer.from(crypto.hkdfSync("sha256", Buffer.from(secret), Buffer.from("keycard v1"), Buffer.from(info), len));

export function kid(secret) {
  return hkdf(secret, "keycard kid").subarray(0, 6).toString("base64url");
}

export function mint({ secret, name = "keycard", iat, ctime = iat, aexp = iat + 7 * 86400, sid, data, inKv = false, version = "v1", kidOverride }) {
  const id = sid ?? crypto.randomBytes(32).toString("base64url");
  const body = inKv ? "-" : Buffer.from(JSON.stringify(data ?? {})).toString("base64url");
  const signed = `${version}.${kidOverride ?? kid(secret)}.${iat}.${ctime}.${aexp}.${id}.${body}`;
  const mac = crypto.createHmac("sha256", hkdf(secret, "keycard cookie-mac")).update(Buffer.concat([Buffer.from(name), Buffer.from([0]), Buffer.from(signed)])).digest("base64url");
  return `${signed}.${mac}`;
}

/** A device-bound session's short-lived cookie value (docs/formats.md, "Device-bound
 * sessions"): `<exp>.<tag>` for the session id `sid` and the bound key's thumbprint. */
export function mintShortLived({ secret, sid, thumb, exp }) {
  const parts = ["bound", sid, thumb, String(exp)].map((p) => Buffer.from(p));
  const covered = Buffer.concat(parts.flatMap((p, i) => (i ? [Buffer.from([0]), p] : [p])));
  const tag = crypto.createHmac("sha256", hkdf(secret, "keycard device-bound")).update(covered).digest("base64url");
  return `${exp}.${tag}`;
}
