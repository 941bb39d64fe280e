<?php
// A legacy PHP app behind keycard. It never touches cookies or keys: it reads the
// session from X-Session and changes it with X-Session-Set / X-Session-Action.
// Run: php -S 127.0.0.1:9000 examples/php/index.php   (ORIGIN_SECRET set => jwt format)

function b64url_decode(string $s): string {
    return base64_decode(strtr($s, '-_', '+/') . str_repeat('=', (4 - strlen($s) % 4) % 4));
}

// The session, or null. With SESSION_HEADER_FORMAT=jwt, verify the HS256 signature,
// issuer and expiry first: only the edge knows ORIGIN_SECRET.
function keycard_session(): ?array {
    $h = $_SERVER['HTTP_X_SESSION'] ?? '';
    if ($h === '') return null;
    $secret = getenv('ORIGIN_SECRET');
    if ($secret === false || $secret === '') {
        return json_decode(b64url_decode($h), true);
    }
    $parts = explode('.', $h);
    if (count($parts) !== 3) return null;
    $mac = rtrim(strtr(base64_encode(hash_hmac('sha256', "$parts[0].$parts[1]", $secret, true)), '+/', '-_'), '=');
    if (!hash_equals($mac, $parts[2])) return null;
    $claims = json_decode(b64url_decode($parts[1]), true);
    if (($claims['iss'] ?? '') !== 'keycard' || ($claims['exp'] ?? 0) < time()) return null;
    if (($claims['htm'] ?? '') !== $_SERVER['REQUEST_METHOD']) return null;
    return $claims['session'];
}

$session = keycard_session() ?? [];
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);

if ($_SERVER['REQUEST_METHOD'] === 'POST' && $path === '/login') {
    header('X-Session-Set: ' . json_encode(['user' => substr($_POST['name'] ?? 'guest', 0, 64), 'visits' => 0]));
    header('X-Session-Action: regenerate');   // a new session id after login
    header('Location: /', true, 303);
    exit;
}
if ($_SERVER['REQUEST_METHOD'] === 'POST' && $path === '/logout') {
    header('X-Session-Action: destroy');
    header('Location: /', true, 303);
    exit;
}
header('Content-Type: text/plain; charset=utf-8');
header('Cache-Control: no-store');
if (isset($session['user'])) {
    $visits = ($session['visits'] ?? 0) + 1;
    header('X-Session-Set: ' . json_encode(['visits' => $visits]));
    echo "user={$session['user']} visits=$visits stack=php\n";
} else {
    echo "user=anonymous stack=php\n";
}
