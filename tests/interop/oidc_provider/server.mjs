// Test-only OAuth 2 / OIDC authorization server for langchain-agent-auth's interop tests:
// an independent, OpenID-certified provider our client code must work against.
// Started by tests/support/node_idp.py (session fixture `node_idp`); `.ci/run` runs `npm ci` here.
// The AS itself is node-oidc-provider (panva, npm `oidc-provider` 9.x); this file only configures it
// and adds: (1) an RFC 8693 token-exchange grant via provider.registerGrantType, (2) a loopback-only
// admin hook under /__admin/ to approve/deny pending CIBA requests (provider.backchannelResult),
// (3) an opt-in slow_down simulation for CIBA polling (node-oidc-provider never emits slow_down itself).
//
// Env: PORT (default 0 = ephemeral; the chosen port is printed), HOST (default 127.0.0.1),
//      FIXTURES (default ./fixtures next to this file), ADMIN_TOKEN (optional; if set, admin calls
//      need header x-admin-token), CIBA_POLL_INTERVAL (seconds; >0 adds `interval` to the
//      bc-authorize response and answers slow_down to polls that come faster than that),
//      PING_ENDPOINT (https URL for the ping-mode client; default https://127.0.0.1:8443/ciba/notify).
// Start: NODE_EXTRA_CA_CERTS=fixtures/ping-tls.crt node server.mjs
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as crypto from 'node:crypto';

import Provider, { errors } from 'oidc-provider';
// Internal (no "exports" map in oidc-provider, so deep imports resolve); used only to wrap the
// built-in CIBA grant handler for the slow_down simulation.
import instance from 'oidc-provider/lib/helpers/weak_cache.js';
import { jwtVerify, createLocalJWKSet, generateKeyPair, exportJWK } from 'jose';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = process.env.FIXTURES || path.join(HERE, 'fixtures');
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 0);
const ADMIN_TOKEN = process.env.ADMIN_TOKEN || '';
const POLL_INTERVAL = Number(process.env.CIBA_POLL_INTERVAL || 0);
const PING_ENDPOINT = process.env.PING_ENDPOINT || 'https://127.0.0.1:8443/ciba/notify';

const GT = {
  ciba: 'urn:openid:params:grant-type:ciba',
  device: 'urn:ietf:params:oauth:grant-type:device_code',
  tokenExchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
};
const TT = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
};

// ---------------------------------------------------------------- keys (generated once, reused)
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'];
const publicOnly = (jwk) => Object.fromEntries(Object.entries(jwk).filter(([k]) => !PRIVATE_MEMBERS.includes(k)));

async function newJwk(alg, kid) {
  const opts = alg.startsWith('RS') ? { modulusLength: 2048, extractable: true } : { extractable: true };
  const { privateKey } = await generateKeyPair(alg, opts);
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

async function loadOrCreate(file, make) {
  const p = path.join(FIXTURES, file);
  if (fs.existsSync(p)) return JSON.parse(fs.readFileSync(p, 'utf8'));
  const value = await make();
  fs.mkdirSync(FIXTURES, { recursive: true });
  fs.writeFileSync(p, JSON.stringify(value, null, 2), { mode: 0o600 });
  return value;
}

const providerJwks = await loadOrCreate('provider-jwks.private.json', async () => ({
  keys: [await newJwk('RS256', 'as-rs256-1'), await newJwk('ES256', 'as-es256-1')],
}));
// Private key of the private_key_jwt test client (the Python side signs its assertions with it).
const pkjwtClientKey = await loadOrCreate('client-pkjwt.private.jwk.json', () => newJwk('ES256', 'agent-pkjwt-1'));
const cookieKeys = await loadOrCreate('cookie-keys.json', () => [crypto.randomBytes(32).toString('base64url')]);
const localJwks = createLocalJWKSet({ keys: providerJwks.keys.map(publicOnly) });

// ---------------------------------------------------------------- accounts & resource servers
const USERS = {
  alice: { sub: 'alice', email: 'alice@example.com', email_verified: true, name: 'Alice Example' },
  bob: { sub: 'bob', email: 'bob@example.com', email_verified: true, name: 'Bob Example' },
};
const findUserByHint = (hint) => Object.values(USERS).find((u) => u.sub === hint || u.email === hint);

const RESOURCE_SERVERS = {
  'urn:example:api': {
    scope: 'api:read api:write', audience: 'urn:example:api',
    accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'RS256' } },
  },
  'urn:example:downstream': {
    scope: 'downstream:read downstream:write', audience: 'urn:example:downstream',
    accessTokenFormat: 'jwt', accessTokenTTL: 300, jwt: { sign: { alg: 'ES256' } },
  },
};
const DEFAULT_EXCHANGE_RESOURCE = 'urn:example:downstream';
const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];

// ---------------------------------------------------------------- CIBA bookkeeping (test only)
const pending = new Map(); // auth_req_id -> summary, for the admin hook
const forcedSlowDown = new Map(); // auth_req_id -> remaining forced slow_down answers
const lastPoll = new Map(); // auth_req_id -> ms timestamp of last poll
const tokenExchangeAct = new WeakMap(); // AccessToken instance -> act claim

const ALL_GRANTS = ['authorization_code', 'refresh_token', 'client_credentials', GT.ciba, GT.device, GT.tokenExchange];

const configuration = {
  clients: [
    {
      client_id: 'agent-client',
      client_secret: 'agent-client-secret-0123456789abcdef',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ALL_GRANTS,
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1:8765/callback'],
      backchannel_token_delivery_mode: 'poll',
      authorization_details_types: ['agent_action', 'payment_initiation'],
    },
    {
      client_id: 'agent-ping',
      client_secret: 'agent-ping-secret-0123456789abcdef',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [GT.ciba, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      backchannel_token_delivery_mode: 'ping',
      backchannel_client_notification_endpoint: PING_ENDPOINT,
    },
    {
      client_id: 'agent-post',
      client_secret: 'agent-post-secret-0123456789abcdef',
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['client_credentials', GT.tokenExchange],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'agent-pkjwt',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [publicOnly(pkjwtClientKey)] },
      grant_types: ['client_credentials', GT.tokenExchange, GT.ciba, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      backchannel_token_delivery_mode: 'poll',
    },
  ],
  jwks: providerJwks,
  cookies: { keys: cookieKeys },
  scopes: OIDC_SCOPES,
  acrValues: ['urn:example:ciba:approved', 'urn:example:loa:2'], // without this oidc-provider drops the acr claim
  claims: {
    acr: null, amr: null, auth_time: null, iss: null, sid: null,
    openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'],
  },
  async findAccount(ctx, id) {
    const user = USERS[id];
    if (!user) return undefined;
    return { accountId: id, async claims() { return { ...user }; } };
  },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    BackchannelAuthenticationRequest(ctx) {
      const requested = Number(ctx?.oidc?.params?.requested_expiry);
      return requested > 0 ? Math.min(600, requested) : 300;
    },
    ClientCredentials: 600,
    DeviceCode: 600,
    Grant: 3600,
    IdToken: 600,
    Interaction: 600,
    RefreshToken: 86400,
    Session: 3600,
  },
  // Allow loopback targets for the CIBA ping callback (oidc-provider's default fetch has SSRF
  // protection that drops connections to 127.0.0.0/8). Test-only.
  fetch(url, options) {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  async extraTokenClaims(ctx, token) {
    const act = tokenExchangeAct.get(token);
    return act ? { act } : undefined;
  },
  features: {
    devInteractions: { enabled: true }, // HTML login/consent pages; any known account id logs in
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      async getResourceServerInfo(ctx, resourceIndicator) {
        const info = RESOURCE_SERVERS[resourceIndicator];
        if (!info) throw new errors.InvalidTarget(`unknown resource indicator ${resourceIndicator}`);
        return info;
      },
    },
    richAuthorizationRequests: {
      enabled: true,
      types: {
        // An example RAR type for agent tool calls.
        agent_action: {
          validate(ctx, detail) {
            if (!Array.isArray(detail.actions) || detail.actions.length === 0) {
              throw new errors.InvalidAuthorizationDetails("agent_action requires a non-empty 'actions' array");
            }
          },
        },
        payment_initiation: {
          validate(ctx, detail) {
            if (!detail.instructedAmount?.amount || !detail.instructedAmount?.currency) {
              throw new errors.InvalidAuthorizationDetails('payment_initiation requires instructedAmount {amount,currency}');
            }
          },
        },
      },
      // Policy: grant exactly what was approved/requested.
      async authorizationDetailsForGrantSource(ctx, source) {
        const grant = ctx.oidc.entities.Grant;
        return grant?.rar ?? (ctx.oidc.params.authorization_details ? JSON.parse(ctx.oidc.params.authorization_details) : undefined);
      },
      async authorizationDetailsForAccessToken(ctx, token, source) {
        if (source?.rar) return source.rar;
        if (ctx.oidc.params.authorization_details) return JSON.parse(ctx.oidc.params.authorization_details);
        return undefined;
      },
      async authorizationDetailsForIntrospection(ctx, token) {
        return token.rar;
      },
    },
    ciba: {
      enabled: true,
      deliveryModes: ['poll', 'ping'],
      async processLoginHint(ctx, loginHint) {
        return findUserByHint(loginHint)?.sub; // undefined -> unknown_user_id
      },
      async processLoginHintToken() {
        throw new errors.InvalidRequest('login_hint_token is not supported by this test server');
      },
      async validateBindingMessage(ctx, bindingMessage) {
        if (bindingMessage !== undefined && !/^[\p{L}\p{N} .,:;!?#+\-_/()]{1,64}$/u.test(bindingMessage)) {
          throw new errors.InvalidBindingMessage('binding_message must be 1-64 printable characters');
        }
      },
      async validateRequestContext(ctx, requestContext) {
        // request_context is free-form; accept anything (or nothing).
      },
      async verifyUserCode(ctx, account, userCode) {
        if (userCode !== undefined && userCode !== '123456') {
          throw new errors.InvalidUserCode('invalid user_code');
        }
      },
      async triggerAuthenticationDevice(ctx, request, account, client) {
        // A real AS would push a notification to the user's phone here. We just record it so a test
        // can approve or deny it through the admin hook.
        pending.set(request.jti, {
          auth_req_id: request.jti,
          client_id: client.clientId,
          account_id: account.accountId,
          scope: request.scope,
          resource: request.resource,
          binding_message: request.params.binding_message,
          request_context: request.params.request_context,
          authorization_details: request.params.authorization_details
            ? JSON.parse(request.params.authorization_details) : undefined,
          expires_at: request.exp,
          status: 'pending',
        });
      },
    },
  },
};

// ---------------------------------------------------------------- boot
const server = http.createServer();
await new Promise((resolve) => server.listen(PORT, HOST, resolve));
const { port } = server.address();
const ISSUER = `http://${HOST}:${port}`;
const provider = new Provider(ISSUER, configuration);

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('backchannel.error', (ctx, err) => console.error('backchannel.error', err));

// Add `interval` to the bc-authorize response when a minimum poll interval is configured.
provider.use(async (ctx, next) => {
  await next();
  if (POLL_INTERVAL > 0 && ctx.oidc?.route === 'backchannel_authentication' && ctx.status === 200) {
    ctx.body = { ...ctx.body, interval: POLL_INTERVAL };
  }
});

// Wrap the built-in CIBA token-endpoint handler: optional slow_down simulation.
{
  const handlers = instance(provider).grantTypeHandlers;
  const builtin = handlers.get(GT.ciba);
  handlers.set(GT.ciba, async (ctx) => {
    const id = ctx.oidc.params.auth_req_id;
    if (id) {
      const forced = forcedSlowDown.get(id) || 0;
      if (forced > 0) {
        forcedSlowDown.set(id, forced - 1);
        throw new errors.SlowDown();
      }
      const now = Date.now();
      const last = lastPoll.get(id);
      lastPoll.set(id, now);
      if (POLL_INTERVAL > 0 && last !== undefined && now - last < POLL_INTERVAL * 1000) {
        throw new errors.SlowDown();
      }
    }
    const result = await builtin(ctx);
    const entry = pending.get(id);
    if (entry) entry.status = 'token_issued';
    return result;
  });
}

// ---------------------------------------------------------------- RFC 8693 token exchange
async function resolveToken(ctx, value, type, label) {
  if (![TT.accessToken, TT.jwt, TT.idToken].includes(type)) {
    throw new errors.InvalidRequest(`unsupported ${label}_type`);
  }
  if (value.split('.').length === 3) {
    try {
      const { payload } = await jwtVerify(value, localJwks, { issuer: provider.issuer });
      return { sub: payload.sub, scope: payload.scope, act: payload.act, clientId: payload.client_id || payload.azp };
    } catch (err) {
      throw new errors.InvalidGrant(`${label} is invalid (${err.code || err.message})`);
    }
  }
  if (type === TT.accessToken) {
    const at = await provider.AccessToken.find(value);
    if (at?.isValid) return { sub: at.accountId, scope: at.scope, act: at.extra?.act, clientId: at.clientId };
  }
  throw new errors.InvalidGrant(`${label} is invalid or expired`);
}

const TE_PARAMS = ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
  'requested_token_type', 'audience', 'resource', 'scope'];

provider.registerGrantType(GT.tokenExchange, async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  if (!params.subject_token || !params.subject_token_type) {
    throw new errors.InvalidRequest('subject_token and subject_token_type are required');
  }
  if (params.requested_token_type && ![TT.accessToken, TT.jwt].includes(params.requested_token_type)) {
    throw new errors.InvalidRequest('unsupported requested_token_type');
  }
  if (Boolean(params.actor_token) !== Boolean(params.actor_token_type)) {
    throw new errors.InvalidRequest('actor_token and actor_token_type must be used together');
  }
  const subject = await resolveToken(ctx, params.subject_token, params.subject_token_type, 'subject_token');
  if (!subject.sub || !USERS[subject.sub]) {
    throw new errors.InvalidGrant('subject_token does not represent a known end-user');
  }
  const actor = params.actor_token
    ? await resolveToken(ctx, params.actor_token, params.actor_token_type, 'actor_token') : undefined;

  const targets = [...new Set([].concat(params.resource ?? [], params.audience ?? []))];
  if (targets.length > 1) throw new errors.InvalidTarget('only one resource/audience value is supported');
  const resource = targets[0] ?? DEFAULT_EXCHANGE_RESOURCE;
  const info = RESOURCE_SERVERS[resource];
  if (!info) throw new errors.InvalidTarget(`unknown resource/audience ${resource}`);
  const allowed = new Set(info.scope.split(' '));

  let scopes;
  if (params.scope) {
    scopes = params.scope.split(' ');
    const bad = scopes.filter((s) => !allowed.has(s));
    if (bad.length) throw new errors.InvalidScope('requested scope is not available for the target', bad.join(' '));
  } else {
    scopes = [...allowed];
  }

  const grant = new provider.Grant({ accountId: subject.sub, clientId: client.clientId });
  grant.addResourceScope(resource, scopes.join(' '));
  const grantId = await grant.save();

  const at = new provider.AccessToken({
    accountId: subject.sub, client, grantId, gty: 'token-exchange', scope: scopes.join(' '),
  });
  at.resourceServer = new provider.ResourceServer(resource, info);
  const act = { sub: actor?.sub ?? client.clientId };
  if (subject.act) act.act = subject.act; // keep the delegation chain
  tokenExchangeAct.set(at, act);

  ctx.oidc.entity('AccessToken', at);
  const value = await at.save();
  ctx.body = {
    access_token: value,
    issued_token_type: TT.accessToken,
    token_type: 'Bearer',
    expires_in: at.expiration,
    scope: at.scope,
  };
}, TE_PARAMS, ['audience', 'resource']);

// ---------------------------------------------------------------- admin hook (test only)
function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const raw = Buffer.concat(chunks).toString('utf8');
  return raw ? JSON.parse(raw) : {};
}

async function approve(id, body) {
  const request = await provider.BackchannelAuthenticationRequest.find(id, { ignoreExpiration: true });
  if (!request) return [404, { error: 'not_found' }];
  if (request.grantId || request.error) return [409, { error: 'already_resolved' }];

  const scopes = (body.scope ?? request.scope ?? '').split(' ').filter(Boolean);
  const grant = new provider.Grant({ accountId: request.accountId, clientId: request.clientId });
  grant.addOIDCScope(scopes.filter((s) => OIDC_SCOPES.includes(s)).join(' '));
  if (request.claims?.id_token) grant.addOIDCClaims(Object.keys(request.claims.id_token));
  for (const resource of [].concat(request.resource ?? [])) {
    const rsScopes = new Set(RESOURCE_SERVERS[resource]?.scope.split(' '));
    const granted = scopes.filter((s) => rsScopes.has(s));
    if (granted.length) grant.addResourceScope(resource, granted.join(' '));
  }
  const rar = body.authorization_details
    ?? (request.params.authorization_details ? JSON.parse(request.params.authorization_details) : undefined);
  for (const detail of rar ?? []) grant.addRar(detail);
  await grant.save();

  let ping;
  try {
    await provider.backchannelResult(request, grant, {
      acr: body.acr ?? 'urn:example:ciba:approved', amr: body.amr ?? ['user'],
      authTime: Math.floor(Date.now() / 1000), rar,
    });
    ping = request.params.client_notification_token ? 'sent' : undefined;
  } catch (err) {
    ping = `failed: ${err.message}`; // result is saved before the ping is attempted
  }
  const entry = pending.get(id);
  if (entry) entry.status = 'approved';
  return [200, { auth_req_id: id, status: 'approved', grant_id: grant.jti, ping }];
}

async function deny(id, body) {
  const request = await provider.BackchannelAuthenticationRequest.find(id, { ignoreExpiration: true });
  if (!request) return [404, { error: 'not_found' }];
  if (request.grantId || request.error) return [409, { error: 'already_resolved' }];
  const description = body.error_description ?? 'end-user denied the authorization request';
  // backchannelResult() copies `error_description`, but the model persists `errorDescription`, so
  // without this line the description is dropped (oidc-provider 9.13.3 quirk).
  request.errorDescription = description;
  let ping;
  try {
    await provider.backchannelResult(request, new errors.AccessDenied(description));
    ping = request.params.client_notification_token ? 'sent' : undefined;
  } catch (err) {
    ping = `failed: ${err.message}`;
  }
  const entry = pending.get(id);
  if (entry) entry.status = 'denied';
  return [200, { auth_req_id: id, status: 'denied', ping }];
}

async function admin(req, res) {
  if (ADMIN_TOKEN && req.headers['x-admin-token'] !== ADMIN_TOKEN) return send(res, 401, { error: 'unauthorized' });
  const url = new URL(req.url, ISSUER);
  const parts = url.pathname.split('/').filter(Boolean); // ['__admin', ...]
  try {
    if (req.method === 'GET' && parts[1] === 'health') return send(res, 200, { ok: true, issuer: ISSUER });
    if (req.method === 'GET' && parts[1] === 'ciba' && parts.length === 2) {
      const account = url.searchParams.get('account_id');
      const status = url.searchParams.get('status');
      const list = [...pending.values()]
        .filter((e) => (!account || e.account_id === account) && (!status || e.status === status));
      return send(res, 200, list);
    }
    if (req.method === 'POST' && parts[1] === 'ciba' && parts.length === 4) {
      const [, , id, action] = parts;
      const body = await readJson(req);
      if (action === 'approve') return send(res, ...(await approve(id, body)));
      if (action === 'deny') return send(res, ...(await deny(id, body)));
      if (action === 'slow_down') {
        forcedSlowDown.set(id, Number(body.count ?? 1));
        return send(res, 200, { auth_req_id: id, forced_slow_down: Number(body.count ?? 1) });
      }
    }
    return send(res, 404, { error: 'unknown admin route' });
  } catch (err) {
    return send(res, 500, { error: 'admin_error', message: err.message });
  }
}

const providerCallback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/__admin/')) return admin(req, res);
  return providerCallback(req, res);
});

console.log(`READY ${JSON.stringify({ issuer: ISSUER, port, pid: process.pid })}`);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
