/**
 * A small Docker token service (https://distribution.github.io/distribution/spec/auth/token/)
 * on 127.0.0.1 for the real registry's `auth.token`: it checks HTTP Basic
 * credentials, grants the scopes asked for, and signs ES256 JWTs.
 *
 * distribution 2.8 (registry/auth/token/token.go) finds the signing key through
 * the JWT header: `x5c` (a chain verified against `rootcertbundle`), `jwk`, or
 * `kid` (a libtrust fingerprint). We send `x5c` with the self-signed signing
 * certificate, which is also the rootcertbundle, so the chain is that one cert.
 * libtrust checks ES256 signatures as JWS does: r || s, 32 bytes each.
 */
import { createPrivateKey, randomUUID, sign, X509Certificate } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSigningCert } from "./openssl.js";

/** What the issuer saw in one token request. */
export interface TokenRequestRecord {
  service: string | undefined;
  scopes: string[];
  /** The Basic username, when credentials were sent. */
  username: string | undefined;
  /** Whether a token was issued. */
  granted: boolean;
}

/** A running token issuer. */
export interface TokenIssuer {
  /** The realm URL the registry sends in its challenge. */
  realm: string;
  service: string;
  issuer: string;
  /** The signing certificate: the registry's `auth.token.rootcertbundle`. */
  certFile: string;
  certPem: string;
  /** Every token request, in order. */
  requests: TokenRequestRecord[];
  stop(): Promise<void>;
}

/** Options of the token issuer. */
export interface TokenIssuerOptions {
  /** The accepted user; without one, every request is anonymous. */
  username?: string;
  password?: string;
  /** Issue pull-only tokens to requests without credentials (as quay.io does). */
  anonymousPull?: boolean;
  /** Token lifetime in seconds (default 300). */
  expiresIn?: number;
}

function b64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString("base64url");
}

function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  // resourcetype:resourcename:action[,action]; the name may itself hold a colon (a port).
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first <= 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(",")
      .filter((a) => a !== ""),
  };
}

function basicCredentials(
  req: IncomingMessage,
): { username: string; password: string } | undefined {
  const value = req.headers.authorization;
  if (!value?.toLowerCase().startsWith("basic ")) return undefined;
  const decoded = Buffer.from(value.slice(6).trim(), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Starts a token issuer on 127.0.0.1 (an ephemeral port). */
export async function startTokenIssuer(options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const dir = await mkdtemp(join(tmpdir(), "sigferry-token-"));
  const service = "sigferry-test-registry";
  const issuer = "sigferry-test-issuer";
  const expiresIn = options.expiresIn ?? 300;
  const requests: TokenRequestRecord[] = [];
  let cert;
  try {
    cert = await makeSigningCert(dir, issuer);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const key = createPrivateKey(cert.keyPem);
  const certDer = new X509Certificate(cert.certPem).raw.toString("base64");

  const issue = (subject: string, access: { type: string; name: string; actions: string[] }[]) => {
    const now = Math.floor(Date.now() / 1000);
    const headerPart = b64url(JSON.stringify({ typ: "JWT", alg: "ES256", x5c: [certDer] }));
    const claims = {
      iss: issuer,
      sub: subject,
      aud: service,
      exp: now + expiresIn,
      nbf: now - 5,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const signingInput = `${headerPart}.${b64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(signingInput), { key, dsaEncoding: "ieee-p1363" });
    return `${signingInput}.${b64url(signature)}`;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname !== "/token") {
      res.writeHead(404).end();
      return;
    }
    const scopes = url.searchParams.getAll("scope");
    const creds = basicCredentials(req);
    const record: TokenRequestRecord = {
      service: url.searchParams.get("service") ?? undefined,
      scopes,
      username: creds?.username,
      granted: false,
    };
    requests.push(record);
    const authenticated =
      creds !== undefined &&
      options.username !== undefined &&
      creds.username === options.username &&
      creds.password === options.password;
    const anonymous =
      creds === undefined && (options.anonymousPull === true || options.username === undefined);
    if (!authenticated && !anonymous) {
      res
        .writeHead(401, {
          "content-type": "application/json",
          "www-authenticate": 'Basic realm="sigferry-test-issuer"',
        })
        .end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }));
      return;
    }
    const access = scopes.flatMap((s) => {
      const parsed = parseScope(s);
      if (!parsed) return [];
      // Anonymous callers get pull only, like a public registry.
      if (!authenticated && options.username !== undefined) {
        parsed.actions = parsed.actions.filter((a) => a === "pull");
      }
      return [parsed];
    });
    record.granted = true;
    const token = issue(authenticated ? (creds?.username ?? "") : "", access);
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: expiresIn,
        issued_at: new Date().toISOString(),
      }),
    );
  };

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let stopped = false;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile: cert.certFile,
    certPem: cert.certPem,
    requests,
    async stop() {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
