// An OpenID provider for tollgate's tests: the npm `oidc-provider` (a certified OpenID Connect
// server) on 127.0.0.1:<port>, with dynamic client registration, PKCE, its development login
// and consent pages (any login is accepted), and RFC 8707 resource indicators so that access
// tokens are JWTs whose audience is the MCP resource the client asked for.
//
//   node oidc_server.mjs <port> [<web client redirect URI>]
// With a redirect URI, a confidential client `tollgate-web` (secret `web-secret`,
// client_secret_basic) and `tollgate-post` (secret `post-secret`, client_secret_post) are
// registered for the gateway's browser login.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const webRedirect = process.argv[3];
const clients = webRedirect ? [{
  client_id: 'tollgate-web',
  client_secret: 'web-secret',
  redirect_uris: [webRedirect],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}, {
  client_id: 'tollgate-post',
  client_secret: 'post-secret',
  redirect_uris: [webRedirect],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_post',
}] : [];

const provider = new Provider(issuer, {
  clients,
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'mcp:tools mcp:admin',
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  scopes: ['openid', 'offline_access', 'mcp:tools', 'mcp:admin'],
  claims: { openid: ['sub'], email: ['email'] },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, email: `${sub}@example.test` }) }),
  clientBasedCORS: () => true,
  // Loopback redirect URIs over http are what native and test clients use.
  clientDefaults: { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' },
});
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
