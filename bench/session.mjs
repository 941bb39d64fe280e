// What every keycard variant of the benches signs: one secret and about 200 bytes of
// session data, the same object benches/core.rs signs natively.
export const SECRET = "bench-secret-0123456789abcdef0123456789abcdef0123456789abcdef";
export const SESSION_JSON =
  '{"user":"alice@example.com","name":"Alice Example","roles":["admin","editor","viewer"],"tenant":"acme-corp","locale":"en-GB","theme":"dark","csrf":"3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAA","flags":{"beta":true,"mfa":true},"visits":42}';
