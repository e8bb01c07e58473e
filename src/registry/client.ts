/**
 * The one OCI distribution client (undici). Every registry request of sigferry
 * goes through `RegistryClient#call`: authentication (RFC 7235 challenges, HTTP
 * Basic, the Docker token flow), redirects (never carrying credentials to
 * another origin), and the mapping of transport failures to stable codes.
 *
 * Specs:
 * - OCI distribution: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
 * - Docker token authentication: https://distribution.github.io/distribution/spec/auth/token/
 * - RFC 7235 (HTTP authentication), RFC 8288 (Link header, for tag pagination).
 */
import { createHash } from "node:crypto";
import { rootCertificates } from "node:tls";
import { dispatcherFromEnv, request, type Dispatcher } from "../net/undici.js";
import { isDigest, type Digest } from "../core/digest.js";
import { SigferryError, type ErrorCode, type ErrorDetails } from "../errors.js";
import { resolveNetPolicy, type NetPolicy } from "../net/policy.js";
import {
  TRANSIENT_STATUSES,
  errorCodes,
  isDeadline,
  isTransientTransport,
  markTransient,
  parseRetryAfter,
  withRetry,
} from "../net/retry.js";
import { registerSecret } from "../redact.js";
import { challengeScopes, parseChallenges, pickChallenge } from "./challenge.js";
import {
  MANIFEST_MEDIA_TYPES,
  type BlobPushResult,
  type FetchedManifest,
  type RegistryClientOptions,
  type RegistryCredentials,
} from "./types.js";
import { TIMEOUT_CODES, isTlsCode } from "../net/errors.js";

/** Default limit on a manifest body: 4 MiB, the limit distribution and containers/image use. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_TOKEN_BYTES = 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_TAG_PAGE_BYTES = 16 * 1024 * 1024;
const MAX_TAG_PAGES = 10_000;
const MAX_REDIRECTS = 5;
const DEFAULT_CONNECTIONS = 8;

// OCI distribution spec, "Pulling manifests": repository names and tags.
const REPOSITORY =
  /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

type Method = "GET" | "HEAD" | "PUT" | "POST";
type Headers = Record<string, string>;

/** One logical request: what it is for (messages), where, and the token scopes it needs. */
interface Call {
  op: string;
  repo: string;
  /** The tag (`:tag`) or digest (`@sha256:…`) written, named in errors where one request writes one of many. */
  ref?: string;
  method: Method;
  url: URL;
  headers?: Headers;
  body?: Uint8Array;
  /** Docker token scopes, e.g. `repository:a/b:pull`. */
  scopes: string[];
  /** Follow 3xx answers (blob GET/HEAD: registries redirect to CDNs). */
  redirects?: boolean;
  /** Ends this attempt: Ctrl-C or the request's deadline (src/net/retry.ts). */
  signal?: AbortSignal;
}

interface Response {
  status: number;
  headers: Dispatcher.ResponseData["headers"];
  body: Dispatcher.ResponseData["body"];
  /** The URL that answered (after redirects). */
  url: URL;
}

type KnownChallenge = { scheme: "basic" } | { scheme: "bearer"; realm: string; service?: string };

interface CachedToken {
  token: Promise<string>;
  expiresAt: number;
}

/** sha256 of `bytes` as a Digest. */
export function sha256Digest(bytes: Uint8Array): Digest {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Stops reading a body we refuse; the abort it raises has nowhere else to go. */
function abandon(body: Dispatcher.ResponseData["body"]): void {
  body.on("error", () => undefined);
  body.destroy();
}

/** RFC 7617 Basic credentials. */
function basicAuthorization(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
}

/**
 * Merges token scopes per resource (`repository:a:pull` + `repository:a:pull,push`
 * → `repository:a:pull,push`), sorted, so that equal needs share one cached token.
 */
export function mergeScopes(scopes: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of scopes) {
    // resourcetype:resourcename:action[,action]
    const last = scope.lastIndexOf(":");
    if (last <= 0) continue;
    const resource = scope.slice(0, last);
    const actions = byResource.get(resource) ?? new Set<string>();
    for (const action of scope.slice(last + 1).split(",")) if (action !== "") actions.add(action);
    byResource.set(resource, actions);
  }
  return [...byResource]
    .map(([resource, actions]) => `${resource}:${[...actions].sort().join(",")}`)
    .sort();
}

function pullScope(repo: string): string {
  return `repository:${repo}:pull`;
}

function pushScope(repo: string): string {
  return `repository:${repo}:pull,push`;
}

function header(headers: Response["headers"], name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(", ") : value;
}

/**
 * A URL fit for a message: origin and path only. Why: the query of a CDN
 * redirect is often a signed, bearer-like grant (X-Amz-Signature), and the
 * query of an upload session carries its state.
 */
function safeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function mediaTypeOf(contentType: string | undefined): string | undefined {
  const type = contentType?.split(";")[0]?.trim().toLowerCase();
  return type === "" ? undefined : type;
}

/** An OCI error body (`{"errors":[{"code","message"}]}`), summarised for a message. */
function registryErrorSummary(text: string): { code?: string; message?: string } {
  try {
    const doc = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = Array.isArray(doc.errors) ? doc.errors[0] : undefined;
    if (!first) return {};
    return {
      code: typeof first.code === "string" ? first.code.slice(0, 64) : undefined,
      message: typeof first.message === "string" ? first.message.slice(0, 200) : undefined,
    };
  } catch {
    return {};
  }
}

/** The `rel="next"` target of a Link header (RFC 8288), as distribution paginates tags. */
function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (m && /;\s*rel="?next"?(?:\s|;|$)/i.test(m[2] ?? "")) return m[1];
  }
  return undefined;
}

/** A client for one registry (host[:port]); one keep-alive connection pool, one token cache. */
export class RegistryClient {
  readonly registry: string;
  readonly #origin: string;
  readonly #options: RegistryClientOptions;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #policy: NetPolicy;
  /** Origins that have answered at least once: a refused connection to one of them may pass. */
  readonly #reached = new Set<string>();
  #challenge: KnownChallenge | undefined;
  readonly #tokens = new Map<string, CachedToken>();
  #closing: Promise<void> | undefined;

  /** Creates a client for `registry` (host[:port]); https unless `plainHttp`. */
  constructor(registry: string, options: RegistryClientOptions = {}) {
    this.registry = registry;
    this.#options = options;
    // Docker Hub's API answers on registry-1.docker.io, not on the name users write.
    const host = registry === "docker.io" ? "registry-1.docker.io" : registry;
    this.#origin = `${options.plainHttp ? "http" : "https"}://${host}`;
    const t = options.timeoutMs;
    this.#policy = resolveNetPolicy({
      ...(t !== undefined ? { connectTimeoutMs: t, headersTimeoutMs: t, bodyTimeoutMs: t } : {}),
      ...options.net,
    });
    if (options.dispatcher) {
      this.#dispatcher = options.dispatcher;
      this.#ownsDispatcher = false;
    } else {
      this.#dispatcher = RegistryClient.#makeDispatcher(options, this.#policy);
      this.#ownsDispatcher = true;
    }
  }

  static #makeDispatcher(options: RegistryClientOptions, policy: NetPolicy): Dispatcher {
    const tlsOptions = {
      timeout: policy.connectTimeoutMs,
      // Extra CAs are added to the system roots, not used instead of them.
      ...(options.ca !== undefined ? { ca: [...rootCertificates, options.ca] } : {}),
      rejectUnauthorized: options.insecureSkipTlsVerify !== true,
    };
    const agentOptions = {
      connections: options.connections ?? DEFAULT_CONNECTIONS,
      keepAliveTimeout: 10_000,
      connect: tlsOptions,
    };
    return dispatcherFromEnv(agentOptions);
  }

  /** Closes the connection pool (when the client created it). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#tokens.clear();
      if (this.#ownsDispatcher) await this.#dispatcher.close();
    })();
    return this.#closing;
  }

  /** Fetches a manifest's exact bytes and the digest computed from them; undefined on 404. */
  async getManifest(
    repo: string,
    reference: string,
    accept: readonly string[] = MANIFEST_MEDIA_TYPES,
    maxBytes: number = MAX_MANIFEST_BYTES,
  ): Promise<FetchedManifest | undefined> {
    const url = this.#url(repo, "manifests", this.#reference(reference));
    return this.#retry("get manifest", repo, async (signal) => {
      const call: Call = {
        op: "get manifest",
        repo,
        method: "GET",
        url,
        headers: { accept: accept.join(", ") },
        scopes: [pullScope(repo)],
        signal,
      };
      const res = await this.#call(call);
      if (res.status === 404) {
        await res.body.dump();
        return undefined;
      }
      if (res.status !== 200) throw await this.#statusError(call, res);
      const bytes = await this.#readBody(call, res, maxBytes, "manifest");
      // Docker-Content-Digest is optional and is not proof: hash the bytes.
      const digest = sha256Digest(bytes);
      if (isDigest(reference) && digest !== reference) {
        throw new SigferryError(
          "DIGEST_MISMATCH",
          `${this.registry}/${repo}@${reference}: the registry served a manifest whose sha256 is ${digest}`,
          { details: this.#details(call, res.url, { digest: reference, actual: digest }) },
        );
      }
      let mediaType = mediaTypeOf(header(res.headers, "content-type"));
      if (mediaType === undefined || !mediaType.startsWith("application/vnd.")) {
        mediaType = embeddedMediaType(bytes) ?? mediaType ?? "application/octet-stream";
      }
      return { bytes, digest, mediaType };
    });
  }

  /** HEADs a manifest: the registry's digest, media type and size; undefined on 404. */
  async headManifest(
    repo: string,
    reference: string,
  ): Promise<{ digest?: Digest; mediaType?: string; size?: number } | undefined> {
    const url = this.#url(repo, "manifests", this.#reference(reference));
    return this.#retry("head manifest", repo, async (signal) => {
      const call: Call = {
        op: "head manifest",
        repo,
        method: "HEAD",
        url,
        headers: { accept: MANIFEST_MEDIA_TYPES.join(", ") },
        scopes: [pullScope(repo)],
        signal,
      };
      const res = await this.#call(call);
      if (res.status !== 200 && res.status !== 404) throw await this.#statusError(call, res);
      await res.body.dump();
      if (res.status === 404) return undefined;
      const out: { digest?: Digest; mediaType?: string; size?: number } = {};
      const digest = header(res.headers, "docker-content-digest");
      if (isDigest(digest)) out.digest = digest;
      const mediaType = mediaTypeOf(header(res.headers, "content-type"));
      if (mediaType !== undefined) out.mediaType = mediaType;
      const size = Number(header(res.headers, "content-length"));
      if (
        Number.isSafeInteger(size) &&
        size >= 0 &&
        header(res.headers, "content-length") !== undefined
      )
        out.size = size;
      return out;
    });
  }

  /** Downloads a blob (following redirects), verifying its digest and, when given, its size. */
  async getBlob(
    repo: string,
    digest: Digest,
    maxBytes: number,
    opts: { size?: number } = {},
  ): Promise<Uint8Array> {
    const url = this.#url(repo, "blobs", this.#digest(digest));
    return this.#retry("get blob", repo, async (signal) => {
      const call: Call = {
        op: "get blob",
        repo,
        method: "GET",
        url,
        scopes: [pullScope(repo)],
        redirects: true,
        signal,
      };
      const res = await this.#call(call);
      if (res.status !== 200) throw await this.#statusError(call, res);
      const bytes = await this.#readBody(call, res, maxBytes, "blob", digest);
      const actual = sha256Digest(bytes);
      if (actual !== digest || (opts.size !== undefined && bytes.length !== opts.size)) {
        throw new SigferryError(
          "DIGEST_MISMATCH",
          `${this.registry}/${repo}@${digest}: the blob received (${bytes.length} bytes) hashes to ${actual}`,
          { details: this.#details(call, res.url, { digest, actual, size: bytes.length }) },
        );
      }
      return bytes;
    });
  }

  /** True when the repository has the blob (HEAD; redirects followed). */
  async hasBlob(repo: string, digest: Digest): Promise<boolean> {
    this.#digest(digest);
    return this.#retry("head blob", repo, (signal) =>
      this.#hasBlob(repo, digest, [pullScope(repo)], signal),
    );
  }

  /** One HEAD of a blob (no retry of its own: callers run it inside #retry). */
  async #hasBlob(
    repo: string,
    digest: Digest,
    scopes: string[],
    signal: AbortSignal,
  ): Promise<boolean> {
    const call: Call = {
      op: "head blob",
      repo,
      method: "HEAD",
      url: this.#url(repo, "blobs", this.#digest(digest)),
      scopes,
      redirects: true,
      signal,
    };
    const res = await this.#call(call);
    if (res.status !== 200 && res.status !== 404) throw await this.#statusError(call, res);
    await res.body.dump();
    return res.status === 200;
  }

  /**
   * Pushes a blob: skipped when present (HEAD), else mounted from `mountFrom`
   * when the registry can, else a monolithic upload (POST, then PUT ?digest=).
   *
   * Retries restart the whole sequence from the HEAD. Why: POST and the
   * session's PUT are not idempotent; a session whose PUT failed (or whose
   * answer was lost) may be consumed or gone, so it is never reused. The HEAD
   * finds a blob that an answer-lost PUT did store; an abandoned session is
   * garbage the registry purges on its own.
   */
  async pushBlob(
    repo: string,
    digest: Digest,
    bytes: Uint8Array,
    opts: {
      mountFrom?: string;
      /**
       * HEAD first and skip the upload when present (default true). False when the
       * caller knows the blob is almost surely absent (e.g. its manifest's tag is):
       * for a small blob the HEAD costs a round trip and saves no bytes.
       */
      checkExists?: boolean;
    } = {},
  ): Promise<BlobPushResult> {
    this.#digest(digest);
    const actual = sha256Digest(bytes);
    if (actual !== digest) {
      throw new SigferryError(
        "DIGEST_MISMATCH",
        `refusing to push to ${this.registry}/${repo}: the bytes hash to ${actual}, not ${digest}`,
        { details: { registry: this.registry, repository: repo, digest, actual } },
      );
    }
    if (opts.mountFrom !== undefined) this.#repo(opts.mountFrom);
    return this.#retry("push blob", repo, (signal) =>
      this.#pushBlobOnce(repo, digest, bytes, opts.mountFrom, signal, opts.checkExists ?? true),
    );
  }

  async #pushBlobOnce(
    repo: string,
    digest: Digest,
    bytes: Uint8Array,
    mountFrom: string | undefined,
    signal: AbortSignal,
    checkExists = true,
  ): Promise<BlobPushResult> {
    // Asking for push from the start: one token per repository for the whole push.
    if (checkExists && (await this.#hasBlob(repo, digest, [pushScope(repo)], signal)))
      return "exists";

    let location: URL | undefined;
    if (mountFrom !== undefined && mountFrom !== repo) {
      // OCI distribution spec, "Mounting a blob from another repository".
      const url = this.#url(repo, "blobs", "uploads/");
      url.search = `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}`;
      const call: Call = {
        op: "mount blob",
        repo,
        method: "POST",
        url,
        scopes: [pushScope(repo), pullScope(mountFrom)],
        signal,
      };
      const res = await this.#call(call);
      if (res.status === 201) {
        await res.body.dump();
        return "mounted";
      }
      if (res.status !== 202) throw await this.#statusError(call, res);
      await res.body.dump();
      // 202: the registry could not mount and opened an upload session instead.
      location = this.#location(call, res);
    }

    if (location === undefined) {
      const call: Call = {
        op: "start blob upload",
        repo,
        method: "POST",
        url: this.#url(repo, "blobs", "uploads/"),
        scopes: [pushScope(repo)],
        signal,
      };
      const res = await this.#call(call);
      if (res.status !== 202) throw await this.#statusError(call, res);
      await res.body.dump();
      location = this.#location(call, res);
    }

    // Monolithic upload: PUT <location>?digest=<digest> with the whole body. The
    // query is appended as text: re-serialising the session's own query could alter it.
    location.search = `${location.search === "" ? "?" : `${location.search}&`}digest=${encodeURIComponent(digest)}`;
    const call: Call = {
      op: "upload blob",
      repo,
      method: "PUT",
      url: location,
      headers: { "content-type": "application/octet-stream" },
      body: bytes,
      scopes: [pushScope(repo)],
      signal,
    };
    const res = await this.#call(call);
    if (res.status !== 201 && res.status !== 204) throw await this.#statusError(call, res);
    await res.body.dump();
    this.#checkDigestHeader(call, res, digest);
    return "uploaded";
  }

  /**
   * Pushes a manifest under a tag (or digest) and returns its digest, checked
   * against the registry's. PUT of the same bytes is idempotent: retried as is.
   */
  async putManifest(
    repo: string,
    tag: string,
    bytes: Uint8Array,
    mediaType: string,
  ): Promise<Digest> {
    const digest = sha256Digest(bytes);
    if (isDigest(tag) && tag !== digest) {
      throw new SigferryError(
        "DIGEST_MISMATCH",
        `refusing to push to ${this.registry}/${repo}@${tag}: the manifest hashes to ${digest}`,
        { details: { registry: this.registry, repository: repo, digest: tag, actual: digest } },
      );
    }
    const url = this.#url(repo, "manifests", this.#reference(tag));
    return this.#retry("put manifest", repo, async (signal) => {
      const call: Call = {
        op: "put manifest",
        repo,
        ref: isDigest(tag) ? `@${tag}` : `:${tag}`,
        method: "PUT",
        url,
        headers: { "content-type": mediaType },
        body: bytes,
        scopes: [pushScope(repo)],
        signal,
      };
      const res = await this.#call(call);
      if (res.status < 200 || res.status > 299) throw await this.#statusError(call, res);
      await res.body.dump();
      this.#checkDigestHeader(call, res, digest);
      return digest;
    });
  }

  /** Lists a repository's tags, following `Link: <…>; rel="next"` pages; [] when it does not exist. */
  async listTags(repo: string): Promise<string[]> {
    const tags: string[] = [];
    const seen = new Set<string>();
    let url: URL | undefined = this.#url(repo, "tags", "list");
    for (let page = 0; url !== undefined; page++) {
      if (page >= MAX_TAG_PAGES || seen.has(url.href)) {
        throw new SigferryError(
          "REGISTRY_PROTOCOL",
          `list tags ${this.registry}/${repo}: the tag list does not end`,
          { details: { registry: this.registry, repository: repo, url: safeUrl(url) } },
        );
      }
      seen.add(url.href);
      const pageUrl: URL = url;
      // Each page is one idempotent GET, retried on its own.
      const got = await this.#retry("list tags", repo, async (signal) => {
        const call: Call = {
          op: "list tags",
          repo,
          method: "GET",
          url: pageUrl,
          scopes: [pullScope(repo)],
          signal,
        };
        const res = await this.#call(call);
        if (res.status === 404 && page === 0) {
          await res.body.dump();
          return undefined;
        }
        if (res.status !== 200) throw await this.#statusError(call, res);
        const text = Buffer.from(
          await this.#readBody(call, res, MAX_TAG_PAGE_BYTES, "tag list"),
        ).toString("utf8");
        let doc: { tags?: unknown };
        try {
          doc = JSON.parse(text) as { tags?: unknown };
        } catch {
          throw this.#protocolError(call, res.url, "the tag list is not JSON");
        }
        let pageTags: string[] = [];
        if (doc.tags !== null && doc.tags !== undefined) {
          if (!Array.isArray(doc.tags) || doc.tags.some((t) => typeof t !== "string")) {
            throw this.#protocolError(
              call,
              res.url,
              "the tag list's tags is not a list of strings",
            );
          }
          pageTags = doc.tags as string[];
        }
        const next = nextLink(header(res.headers, "link"));
        return { tags: pageTags, next: next === undefined ? undefined : new URL(next, res.url) };
      });
      if (got === undefined) return [];
      tags.push(...got.tags);
      url = got.next;
    }
    return tags;
  }

  /**
   * Runs one logical request under the shared retry policy (src/net/retry.ts):
   * `fn` is one complete attempt, answer read and checked, so a body cut short
   * is retried like a reset connection.
   */
  #retry<T>(op: string, repo: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return withRetry(({ signal }) => fn(signal), {
      policy: this.#policy,
      what: `${op} ${this.registry}/${repo}`,
      ...(this.#options.signal !== undefined ? { signal: this.#options.signal } : {}),
      ...(this.#options.onRetry !== undefined ? { onRetry: this.#options.onRetry } : {}),
    });
  }

  // ---- request path -------------------------------------------------------

  /**
   * Sends one logical request: attaches credentials for the registry's origin
   * only, answers one 401 challenge (RFC 7235) and retries once, follows
   * redirects when asked, and maps 403 and a second 401 to auth errors.
   */
  async #call(call: Call): Promise<Response> {
    let url = call.url;
    let method = call.method;
    let body = call.body;
    let answeredChallenge = false;
    let freshToken = false;
    for (let redirects = 0; ;) {
      // Credentials belong to the registry's origin; never send them to a CDN
      // or any other origin a redirect or an upload Location points at.
      const sameOrigin = url.origin === this.#origin;
      const headers: Headers = {
        "user-agent": this.#options.userAgent ?? "sigferry",
        ...call.headers,
      };
      let sent: "none" | "basic" | "bearer" = "none";
      if (sameOrigin) {
        const auth = await this.#authorization(call, freshToken);
        freshToken = false;
        if (auth !== undefined) {
          headers.authorization = auth.value;
          sent = auth.scheme;
        }
      }
      const res = await this.#attempt(call, method, url, headers, body);

      if (sameOrigin && res.status === 401) {
        await res.body.dump();
        if (answeredChallenge || sent === "basic") throw this.#authError(call, 401, url);
        const challenge = pickChallenge(
          parseChallenges(header(res.headers, "www-authenticate") ?? ""),
        );
        if (!challenge) throw this.#authError(call, 401, url);
        if (challenge.scheme === "bearer") {
          const realm = challenge.params.realm;
          if (!realm) {
            throw this.#protocolError(call, url, "the Bearer challenge has no realm");
          }
          this.#challenge = { scheme: "bearer", realm, service: challenge.params.service };
          call.scopes = mergeScopes([...call.scopes, ...challengeScopes(challenge)]);
          // A token we sent was refused (it may have expired early): fetch a
          // fresh one for the retry rather than reuse the cached one.
          freshToken = sent === "bearer";
        } else {
          this.#challenge = { scheme: "basic" };
          if (!this.#credentials(call.repo)) throw this.#authError(call, 401, url);
        }
        answeredChallenge = true;
        continue;
      }
      if (sameOrigin && res.status === 403) {
        await res.body.dump();
        throw this.#authError(call, 403, url);
      }
      const location = header(res.headers, "location");
      if (call.redirects && [301, 302, 303, 307, 308].includes(res.status) && location) {
        await res.body.dump();
        if (++redirects > MAX_REDIRECTS) {
          throw this.#protocolError(call, url, `more than ${MAX_REDIRECTS} redirects`);
        }
        url = new URL(location, url);
        if (url.protocol !== "https:" && url.protocol !== "http:") {
          throw this.#protocolError(call, url, "redirect to a non-HTTP URL");
        }
        if (res.status === 303) {
          method = method === "HEAD" ? "HEAD" : "GET";
          body = undefined;
        }
        continue;
      }
      return { ...res, url };
    }
  }

  /**
   * One HTTP exchange under the policy's timeouts and the attempt's signal,
   * with undici errors mapped to NETWORK / TLS / TIMEOUT / INTERRUPTED. The
   * retry policy wraps whole operations (see #retry), not this exchange, so
   * that reading the body and checking it belong to the same attempt.
   */
  async #attempt(
    call: Call,
    method: Method,
    url: URL,
    headers: Headers,
    body: Uint8Array | undefined,
  ): Promise<Omit<Response, "url">> {
    try {
      const res = await request(url, {
        dispatcher: this.#dispatcher,
        method,
        headers,
        body,
        signal: call.signal ?? this.#options.signal,
        headersTimeout: this.#policy.headersTimeoutMs,
        bodyTimeout: this.#policy.bodyTimeoutMs,
        // undici closes the connection after every HEAD unless told otherwise
        // (nodejs/undici#258, for servers that send a body anyway); registries do
        // not, and a new connection per HEAD costs a handshake (TCP, TLS) each.
        ...(method === "HEAD" ? { reset: false } : {}),
      });
      this.#reached.add(url.origin);
      return { status: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      throw this.#transportError(call, url, err);
    }
  }

  #credentials(repo: string): RegistryCredentials | undefined {
    return this.#options.credentials?.(this.registry, repo);
  }

  /** The Authorization value for a request to the registry, once it has asked for one. */
  async #authorization(
    call: Call,
    fresh: boolean,
  ): Promise<{ value: string; scheme: "basic" | "bearer" } | undefined> {
    const challenge = this.#challenge;
    if (challenge === undefined) return undefined;
    const credentials = this.#credentials(call.repo);
    if (challenge.scheme === "basic") {
      if (!credentials) return undefined;
      return { value: basicAuthorization(credentials), scheme: "basic" };
    }
    const token = await this.#token(call, challenge, credentials, fresh);
    return { value: `Bearer ${token}`, scheme: "bearer" };
  }

  /**
   * A Docker registry token for the call's scopes, cached per (realm, service,
   * scopes, user) so a run asks the token service once per repository scope.
   */
  async #token(
    call: Call,
    challenge: { realm: string; service?: string },
    credentials: RegistryCredentials | undefined,
    fresh: boolean,
  ): Promise<string> {
    const scopes = mergeScopes(call.scopes);
    const key = [
      challenge.realm,
      challenge.service ?? "",
      scopes.join(" "),
      credentials?.username ?? "",
    ].join("\n");
    const cached = this.#tokens.get(key);
    if (cached && !fresh && cached.expiresAt > Date.now()) return cached.token;
    const entry: CachedToken = { token: Promise.resolve(""), expiresAt: Infinity };
    entry.token = this.#fetchToken(call, challenge, scopes, credentials).then(
      ({ token, expiresIn }) => {
        // Renew ten seconds early so a token never expires in flight.
        entry.expiresAt = Date.now() + Math.max(expiresIn - 10, 1) * 1000;
        return token;
      },
      (err: unknown) => {
        if (this.#tokens.get(key) === entry) this.#tokens.delete(key);
        throw err;
      },
    );
    this.#tokens.set(key, entry);
    return entry.token;
  }

  /** Docker token authentication: GET <realm>?service=…&scope=… with Basic credentials if any. */
  async #fetchToken(
    call: Call,
    challenge: { realm: string; service?: string },
    scopes: string[],
    credentials: RegistryCredentials | undefined,
  ): Promise<{ token: string; expiresIn: number }> {
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw this.#protocolError(call, call.url, "the Bearer realm is not a URL");
    }
    if (realm.protocol !== "https:" && realm.protocol !== "http:") {
      throw this.#protocolError(call, call.url, "the Bearer realm is not an http(s) URL");
    }
    // Why: a registry reached over TLS must not be able to make us send the
    // user's password in clear text to a plain-http realm.
    if (credentials && realm.protocol === "http:" && !this.#options.plainHttp) {
      throw this.#protocolError(
        call,
        call.url,
        `the token realm ${safeUrl(realm)} is plain http; refusing to send credentials to it`,
      );
    }
    if (challenge.service) realm.searchParams.append("service", challenge.service);
    for (const scope of scopes) realm.searchParams.append("scope", scope);
    const headers: Headers = {
      "user-agent": this.#options.userAgent ?? "sigferry",
      accept: "application/json",
    };
    if (credentials) headers.authorization = basicAuthorization(credentials);
    const res = await this.#attempt(call, "GET", realm, headers, undefined);
    if (res.status === 401 || res.status === 403) {
      await res.body.dump();
      throw this.#authError(call, res.status, realm, credentials !== undefined);
    }
    if (res.status !== 200) throw await this.#statusError(call, { ...res, url: realm });
    const text = Buffer.from(
      await this.#readBody(call, { ...res, url: realm }, MAX_TOKEN_BYTES, "token"),
    ).toString("utf8");
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch {
      throw this.#protocolError(call, realm, "the token service answered something not JSON");
    }
    const token =
      typeof doc.token === "string" && doc.token !== ""
        ? doc.token
        : typeof doc.access_token === "string" && doc.access_token !== ""
          ? doc.access_token
          : undefined;
    if (token === undefined) {
      throw this.#protocolError(call, realm, "the token service answered without a token");
    }
    registerSecret(token);
    // Docker token spec: expires_in defaults to 60 seconds.
    const expiresIn =
      typeof doc.expires_in === "number" && doc.expires_in > 0 ? doc.expires_in : 60;
    return { token, expiresIn };
  }

  // ---- helpers ------------------------------------------------------------

  #repo(repo: string): string {
    if (!REPOSITORY.test(repo)) {
      throw new SigferryError(
        "INVALID_REFERENCE",
        `"${repo}" is not a valid repository name on ${this.registry}`,
      );
    }
    return repo;
  }

  #reference(reference: string): string {
    if (!TAG.test(reference) && !isDigest(reference)) {
      throw new SigferryError("INVALID_REFERENCE", `"${reference}" is not a tag or sha256 digest`);
    }
    return reference;
  }

  #digest(digest: string): Digest {
    if (!isDigest(digest)) {
      throw new SigferryError("INVALID_DIGEST", `"${digest}" is not a sha256 digest`);
    }
    return digest;
  }

  #url(repo: string, kind: "manifests" | "blobs" | "tags", rest: string): URL {
    return new URL(`${this.#origin}/v2/${this.#repo(repo)}/${kind}/${rest}`);
  }

  /** The upload Location of a 202, relative or absolute (OCI distribution spec). */
  #location(call: Call, res: Response): URL {
    const location = header(res.headers, "location");
    if (!location) throw this.#protocolError(call, res.url, "the upload answer has no Location");
    const url = new URL(location, res.url);
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw this.#protocolError(call, res.url, "the upload Location is not an http(s) URL");
    }
    return url;
  }

  #checkDigestHeader(call: Call, res: Response, expected: Digest): void {
    const got = header(res.headers, "docker-content-digest");
    if (got !== undefined && got !== expected) {
      throw new SigferryError(
        "DIGEST_MISMATCH",
        `${call.op} ${this.registry}/${call.repo}: the registry stored ${got}, not ${expected}`,
        { details: this.#details(call, res.url, { digest: expected, actual: got }) },
      );
    }
  }

  /** Reads a body, refusing more than `maxBytes` (checked against Content-Length first). */
  async #readBody(
    call: Call,
    res: Response,
    maxBytes: number,
    what: string,
    digest?: Digest,
  ): Promise<Uint8Array> {
    const declared = Number(header(res.headers, "content-length"));
    const tooLarge = (): SigferryError =>
      new SigferryError(
        "REGISTRY_PROTOCOL",
        `${call.op} ${this.registry}/${call.repo}: the ${what} is larger than ${maxBytes} bytes`,
        { details: this.#details(call, res.url, digest ? { digest } : {}) },
      );
    if (Number.isFinite(declared) && declared > maxBytes) {
      abandon(res.body);
      throw tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let length = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        length += chunk.length;
        if (length > maxBytes) {
          abandon(res.body);
          throw tooLarge();
        }
        chunks.push(chunk);
      }
    } catch (err) {
      if (err instanceof SigferryError) throw err;
      throw this.#transportError(call, res.url, err);
    }
    const out = new Uint8Array(length);
    let offset = 0;
    for (const chunk of chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }

  /** What a request was about, for messages: registry/repository, and the tag or digest written if any. */
  #where(call: Call): string {
    return `${this.registry}/${call.repo}${call.ref ?? ""}`;
  }

  /** The error's details: registry, repository, URL, and the tag or digest written if any (`reference`). */
  #details(call: Call, url: URL, extra: ErrorDetails = {}): ErrorDetails {
    return {
      registry: this.registry,
      repository: call.repo,
      ...(call.ref !== undefined ? { reference: call.ref.slice(1) } : {}),
      url: safeUrl(url),
      ...extra,
    };
  }

  #protocolError(call: Call, url: URL, why: string): SigferryError {
    return new SigferryError("REGISTRY_PROTOCOL", `${call.op} ${this.#where(call)}: ${why}`, {
      details: this.#details(call, url),
    });
  }

  /** 401/403: names the registry, the repository (and a pushed manifest's tag), never the user or the secret. */
  #authError(
    call: Call,
    status: number,
    url: URL,
    hadCredentials = this.#credentials(call.repo) !== undefined,
  ): SigferryError {
    const where = this.#where(call);
    let code: ErrorCode;
    let message: string;
    if (status === 403) {
      code = "AUTH_DENIED";
      message = `${call.op} ${where}: access denied (403)`;
    } else if (hadCredentials) {
      code = "AUTH_DENIED";
      message = `${call.op} ${where}: the credentials were refused (401)`;
    } else {
      code = "AUTH_REQUIRED";
      message = `${call.op} ${where}: the registry requires authentication and no credentials were found for ${this.registry} (401)`;
    }
    return new SigferryError(code, message, { details: this.#details(call, url, { status }) });
  }

  async #statusError(call: Call, res: Response): Promise<SigferryError> {
    let summary: { code?: string; message?: string } = {};
    try {
      const chunks: Uint8Array[] = [];
      let length = 0;
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        if (length < MAX_ERROR_BODY_BYTES) chunks.push(chunk);
        length += chunk.length;
      }
      summary = registryErrorSummary(Buffer.concat(chunks).toString("utf8"));
    } catch {
      // The status alone is the error; an unreadable body adds nothing.
    }
    const said = summary.code
      ? `: ${summary.code}${summary.message ? ` (${summary.message})` : ""}`
      : "";
    const err = new SigferryError(
      "HTTP_STATUS",
      `${call.op} ${this.#where(call)}: HTTP ${res.status}${said}`,
      {
        details: this.#details(call, res.url, {
          status: res.status,
          ...(summary.code ? { registryError: summary.code } : {}),
        }),
      },
    );
    // 429 and 500/502/503/504 may pass; 400, 404, 405, 409, 412, 422 … will not.
    if (TRANSIENT_STATUSES.has(res.status)) {
      markTransient(err, parseRetryAfter(header(res.headers, "retry-after")));
    }
    return err;
  }

  #transportError(call: Call, url: URL, err: unknown): SigferryError {
    if (err instanceof SigferryError) return err;
    const codes = errorCodes(err);
    const details = this.#details(call, url, codes[0] ? { errorCode: codes[0] } : {});
    const reason = err instanceof Error ? err.message : String(err);
    const target = safeUrl(url);
    if (
      this.#options.signal?.aborted ||
      (!isDeadline(err) &&
        ((err instanceof Error && err.name === "AbortError") ||
          codes.includes("UND_ERR_ABORTED") ||
          codes.includes("ABORT_ERR")))
    ) {
      return new SigferryError("INTERRUPTED", `${call.op} ${target}: aborted`, {
        cause: err,
        details,
      });
    }
    if (isDeadline(err)) {
      return new SigferryError("TIMEOUT", `${call.op} ${target}: ${reason}`, {
        cause: err,
        details,
      });
    }
    if (codes.some((c) => TIMEOUT_CODES.has(c))) {
      return markTransient(
        new SigferryError("TIMEOUT", `${call.op} ${target}: no answer in time (${reason})`, {
          cause: err,
          details,
        }),
      );
    }
    if (codes.some(isTlsCode)) {
      return new SigferryError(
        "TLS",
        `${call.op} ${target}: TLS connection to ${url.host} failed: ${reason}`,
        { cause: err, details },
      );
    }
    const network = new SigferryError("NETWORK", `${call.op} ${target}: ${reason}`, {
      cause: err,
      details,
    });
    return isTransientTransport(err, this.#reached.has(url.origin))
      ? markTransient(network)
      : network;
  }
}

/** The `mediaType` field of a manifest body, for registries that answer a generic Content-Type. */
function embeddedMediaType(bytes: Uint8Array): string | undefined {
  try {
    const doc = JSON.parse(Buffer.from(bytes).toString("utf8")) as { mediaType?: unknown };
    return typeof doc.mediaType === "string" ? doc.mediaType : undefined;
  } catch {
    return undefined;
  }
}
