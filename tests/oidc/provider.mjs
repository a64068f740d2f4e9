// A real OpenID provider for the sign-in tests: the npm package oidc-provider
// (installed here by scripts/test), with its development login and
// consent forms, which the tests fill in. Every account exists: the login name
// is the account's email, verified unless it starts with "unverified".
//
//   node provider.mjs <port> '<clients as JSON>'
//
// A client whose id ends in "-wrong-aud" gets ID tokens for another
// audience, so a relying party can be shown refusing them.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const clients = JSON.parse(process.argv[3]);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: clients.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  pkce: { required: () => true },
  // The scopes' claims (email, email_verified, name) in the ID token itself.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  ttl: { IdToken: Number(process.env.OIDC_ID_TOKEN_TTL || 3600) },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: id, email_verified: !id.startsWith('unverified'), name: id.split('@')[0] };
      },
    };
  },
});

// The ID tokens of a client whose id ends in "-wrong-aud" are issued for
// another application's audience (as if a token meant for it had been
// slipped in): the provider signs them as usual.
const { IdToken } = provider;
const issue = IdToken.prototype.issue;
IdToken.prototype.issue = async function issueForAnotherAudience(...args) {
  const real = this.client;
  if (real && real.clientId.endsWith('-wrong-aud')) {
    this.client = new Proxy(real, {
      get: (target, key) => (key === 'clientId' ? 'another-application' : Reflect.get(target, key)),
    });
  }
  try {
    return await issue.apply(this, args);
  } finally {
    this.client = real;
  }
};

// What went wrong goes to standard error, which the tests show.
provider.on('server_error', (ctx, error) => console.error('oidc-provider server_error:', error));

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
