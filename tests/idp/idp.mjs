// A real OpenID Provider (panva/oidc-provider 9.x) on loopback, for anaconda_auth's tests only.
//
// Started by the `oidc_provider` fixture in conftest.py:
//     TLS_CERT=leaf.pem TLS_KEY=leaf.key node tests/idp/idp.mjs
// It listens on 127.0.0.1 port 0 (or $PORT), and only then builds the Provider, so the issuer
// carries the real port. It prints exactly ONE JSON line on stdout when it is ready:
//     {"issuer":"https://127.0.0.1:<port>","port":<port>,"pid":<pid>,"startup_ms":<ms>}
// and nothing else (QUIET=0 lets oidc-provider's own warnings and notices through).
// It exits when its stdin closes, so a test run that dies leaves no provider behind.
//
// This file must sit next to node_modules: ESM resolves packages from the script's location.
// Install with `npm ci` in this directory (tests/test-all does that).

import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';

const started = process.hrtime.bigint();
const quiet = process.env.QUIET !== '0';
if (quiet) {
  // oidc-provider warns (Node version, dev keys, dev interactions) at import time and prints
  // NOTICE lines lazily; silence both before the dynamic import below, so the ready line is
  // the only output.
  console.warn = () => {};
  console.info = () => {};
}
const { default: Provider } = await import('oidc-provider');

const CLIENT_ID = process.env.CLIENT_ID || 'anaconda-cli-test';
const tlsCert = process.env.TLS_CERT;
const tlsKey = process.env.TLS_KEY;
const scheme = tlsCert ? 'https' : 'http';
const server = tlsCert
  ? https.createServer({ cert: fs.readFileSync(tlsCert), key: fs.readFileSync(tlsKey) })
  : http.createServer();
server.keepAliveTimeout = 5000;

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(process.env.PORT || 0), '127.0.0.1', resolve);
});
const port = server.address().port;
const issuer = `${scheme}://127.0.0.1:${port}`;

// The login form of devInteractions accepts any login/password; the login becomes the account id.
function claimsFor(id) {
  const first = id.charAt(0).toUpperCase() + id.slice(1);
  return {
    sub: id,
    email: `${id}@example.test`,
    email_verified: true,
    name: `${first} Tester`,
    given_name: first,
    family_name: 'Tester',
    preferred_username: id,
  };
}

// Confidential web clients for the Panel OAuth provider's tests (tests/panel): a secret sent in
// the token request's body, Panel's default redirect URI (the app's own address, no path) plus
// the exact ones in $PANEL_REDIRECT_URIS (comma-separated; a web client's URIs match exactly).
// The -refresh- client's access tokens live 62 s, so Panel (which refreshes 60 s before expiry)
// refreshes them within seconds.
const PANEL_CLIENT_IDS = ['panel-app-test', 'panel-app-refresh-test'];
const panelRedirectUris = ['http://localhost:5006',
  ...(process.env.PANEL_REDIRECT_URIS || '').split(',').filter(Boolean)];
const panelClients = PANEL_CLIENT_IDS.map((id) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  token_endpoint_auth_method: 'client_secret_post',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: panelRedirectUris,
  scope: 'offline_access openid email profile',
}));

const provider = new Provider(issuer, {
  clients: [...panelClients, {
    client_id: CLIENT_ID,
    application_type: 'native', // RFC 8252 §7.3: any loopback port matches the registered one
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    redirect_uris: [
      'http://127.0.0.1:8000/auth/oidc',
      'http://localhost:8000/auth/oidc',
      'http://[::1]:8000/auth/oidc',
    ],
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
  },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => claimsFor(id) }),
  cookies: { keys: ['test-only-cookie-key'] },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  // Numeric ttls (or functions of ours): the default functions print NOTICE lines the first time
  // they run.
  ttl: {
    AuthorizationCode: 60, ClientCredentials: 600, DeviceCode: 600,
    IdToken: 3600, RefreshToken: 86400, Interaction: 600, Session: 86400, Grant: 86400,
    AccessToken: (ctx, token, client) => (client?.clientId === 'panel-app-refresh-test' ? 62 : 3600),
  },
});
provider.proxy = false;
// One JSON line on stderr per grant the token endpoint issued, so a test can see that a client
// really exchanged (or refreshed) tokens; the fixture keeps stderr in a file.
provider.on('grant.success', (ctx) => {
  process.stderr.write(JSON.stringify({
    event: 'grant.success', client_id: ctx.oidc.client?.clientId, grant_type: ctx.oidc.params?.grant_type,
  }) + '\n');
});

server.on('request', provider.callback());

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

const startupMs = Number(process.hrtime.bigint() - started) / 1e6;
process.stdout.write(JSON.stringify({ issuer, port, pid: process.pid, startup_ms: Math.round(startupMs) }) + '\n');
