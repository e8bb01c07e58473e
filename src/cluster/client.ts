/**
 * A small Kubernetes API client (undici) for what sigferry does to a cluster:
 * read and list signature ConfigMaps, server-side apply ConfigMaps and the
 * config.openshift.io/v1 ImageDigestMirrorSet and ClusterImagePolicy, and ask
 * the server what it is and what it serves.
 *
 * - Server-side apply: https://kubernetes.io/docs/reference/using-api/server-side-apply/
 *   (PATCH with `application/apply-patch+yaml`; JSON is YAML; `fieldManager`
 *   required; `force=true` takes fields from other managers).
 * - Errors come back as `Status` objects
 *   (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#response-status-kind);
 *   their message and causes name the object, verb and fields, never a secret.
 */
import { Agent, EnvHttpProxyAgent, proxyFromEnv, request, type Dispatcher } from "../net/undici.js";
import { SigferryError, type ErrorCode } from "../errors.js";
import { resolveNetPolicy, type NetPolicy } from "../net/policy.js";
import {
  TRANSIENT_STATUSES,
  errorCodes,
  isDeadline,
  isTransientTransport,
  markTransient,
  parseRetryAfter,
  withRetry,
  type RetryEvent,
} from "../net/retry.js";
import type { ConfigMap, KubeObject } from "../core/manifests.js";
import type { KubeTarget } from "./kubeconfig.js";
import { TIMEOUT_CODES, isTlsCode } from "../net/errors.js";

/** Options of a KubeClient. */
export interface KubeClientOptions {
  /** undici dispatcher to use instead of one built from the target's TLS settings (tests, proxies). */
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** The field manager named in server-side apply; default "sigferry". */
  fieldManager?: string;
  userAgent?: string;
  /** Per-request timeout (headers and body); shorthand for `net`. */
  timeoutMs?: number;
  /** Timeouts and retry limits; default DEFAULT_NET_POLICY and the SIGFERRY_NET_* variables. */
  net?: Partial<NetPolicy>;
  /** Told before each retry (for --verbose). */
  onRetry?: (event: RetryEvent) => void;
  /** Called with each `Warning` header the server sends (deprecations, unknown fields). */
  onWarning?: (warning: string) => void;
  /** Items per page when listing (`limit`), default 500. */
  listPageSize?: number;
}

/** What applyObject did. */
export interface ApplyResult<T extends KubeObject = KubeObject> {
  /** The object as the server returned it after the apply. */
  object: T;
  /** True when the object was created or its stored content changed. */
  changed: boolean;
  /** True when the object did not exist before. */
  created: boolean;
}

/** `GET /version`. */
export interface ServerVersion {
  major: string;
  minor: string;
  gitVersion: string;
  platform?: string;
  [key: string]: unknown;
}

/** A `Status` failure body, as far as sigferry reads it. */
interface KubeStatus {
  kind: "Status";
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: { reason?: string; message?: string; field?: string }[];
  };
}

/** REST mapping of the kinds sigferry writes (no discovery round trip needed). */
const MAPPINGS: Record<string, { resource: string; namespaced: boolean }> = {
  "v1/ConfigMap": { resource: "configmaps", namespaced: true },
  "v1/Namespace": { resource: "namespaces", namespaced: false },
  "config.openshift.io/v1/ImageDigestMirrorSet": {
    resource: "imagedigestmirrorsets",
    namespaced: false,
  },
  "config.openshift.io/v1/ClusterImagePolicy": {
    resource: "clusterimagepolicies",
    namespaced: false,
  },
};

const LIST_PAGE = 500;

function isStatus(v: unknown): v is KubeStatus {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "Status";
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Which object an operation is about, for messages. */
interface Op {
  verb: string;
  what: string;
}

/** A client for one API server (one kubeconfig context). */
export class KubeClient {
  readonly target: KubeTarget;
  readonly fieldManager: string;
  readonly #options: KubeClientOptions;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #auth: string | undefined;
  readonly #policy: NetPolicy;
  /** True once the server has answered: a refused connection after that may pass (a restart). */
  #reached = false;
  #closing: Promise<void> | undefined;

  /** Creates a client for `target`; TLS (CA, client certificate, insecure) comes from the target unless a dispatcher is given. */
  constructor(target: KubeTarget, opts: KubeClientOptions = {}) {
    this.target = target;
    this.#options = opts;
    this.fieldManager = opts.fieldManager ?? "sigferry";
    const t = opts.timeoutMs;
    this.#policy = resolveNetPolicy({
      ...(t !== undefined ? { headersTimeoutMs: t, bodyTimeoutMs: t } : {}),
      ...opts.net,
    });
    if (target.token !== undefined) this.#auth = `Bearer ${target.token}`;
    else if (target.basic !== undefined) {
      this.#auth = `Basic ${Buffer.from(`${target.basic.username}:${target.basic.password}`).toString("base64")}`;
    }
    if (opts.dispatcher !== undefined) {
      this.#dispatcher = opts.dispatcher;
      this.#ownsDispatcher = false;
    } else {
      this.#dispatcher = KubeClient.#makeDispatcher(target, this.#policy.connectTimeoutMs);
      this.#ownsDispatcher = true;
    }
  }

  static #makeDispatcher(target: KubeTarget, connectTimeoutMs: number): Dispatcher {
    const tls = {
      timeout: connectTimeoutMs,
      // Like kubectl: a CA in the kubeconfig replaces the system roots for this server.
      ...(target.ca !== undefined ? { ca: target.ca } : {}),
      ...(target.clientCert !== undefined
        ? { cert: target.clientCert, key: target.clientKey }
        : {}),
      rejectUnauthorized: target.insecureSkipTlsVerify !== true,
    };
    const env = process.env;
    if (!proxyFromEnv(env)) return new Agent({ connect: tls, keepAliveTimeout: 10_000 });
    // Go's proxy rules (which kubectl follows) never proxy loopback; keep that.
    const noProxy = [env.no_proxy ?? env.NO_PROXY, "localhost", "127.0.0.1", "::1"]
      .filter(Boolean)
      .join(",");
    return new EnvHttpProxyAgent({ connect: tls, requestTls: tls, noProxy });
  }

  /** Closes the connection pool (when the client created it). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#ownsDispatcher ? this.#dispatcher.close() : Promise.resolve();
    return this.#closing;
  }

  /** Reads a ConfigMap; undefined when it does not exist. */
  async getConfigMap(namespace: string, name: string): Promise<ConfigMap | undefined> {
    const obj = await this.getObject("v1", "ConfigMap", name, namespace);
    return obj as ConfigMap | undefined;
  }

  /** Reads any object of a kind sigferry knows (see applyObject); undefined on 404. */
  async getObject(
    apiVersion: string,
    kind: string,
    name: string,
    namespace?: string,
  ): Promise<KubeObject | undefined> {
    const path = this.#objectPath(apiVersion, kind, name, namespace);
    const res = await this.#call(
      "GET",
      path,
      { verb: "get", what: path.what },
      { notFoundOk: true },
    );
    if (res === undefined) return undefined;
    return withType(res, apiVersion, kind);
  }

  /**
   * Lists the ConfigMaps of a namespace matching a label selector (`key`,
   * `key=value`, `key!=value`, …), following `continue` tokens so that large
   * namespaces come back whole (API conventions, "Retrieving large results sets in chunks").
   */
  async listConfigMaps(namespace: string, labelSelector: string): Promise<ConfigMap[]> {
    const items: ConfigMap[] = [];
    let cont: string | undefined;
    const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`;
    do {
      const q = new URLSearchParams({ limit: String(this.#options.listPageSize ?? LIST_PAGE) });
      if (labelSelector !== "") q.set("labelSelector", labelSelector);
      if (cont !== undefined) q.set("continue", cont);
      const list = await this.#call(
        "GET",
        { path: base, query: q, what: `configmaps in ${namespace}` },
        {
          verb: "list",
          what: `configmaps in namespace ${namespace}`,
        },
      );
      if (!isObject(list) || !Array.isArray(list.items)) {
        throw new SigferryError(
          "KUBE_API",
          `list configmaps in ${namespace}: the server did not answer with a list`,
          {
            details: { url: this.#safeUrl(base) },
          },
        );
      }
      // Items of a built-in list carry no apiVersion/kind on the wire; put them back.
      for (const item of list.items as unknown[])
        items.push(withType(item, "v1", "ConfigMap") as ConfigMap);
      const meta = list.metadata;
      cont =
        isObject(meta) && typeof meta.continue === "string" && meta.continue !== ""
          ? meta.continue
          : undefined;
    } while (cont !== undefined);
    return items;
  }

  /**
   * Server-side applies `obj` as field manager `fieldManager` (default
   * force=true: sigferry owns the fields it declares; force=false reports
   * conflicts with other managers as KUBE_API). With dryRun, the server
   * validates and computes the result without storing it. `changed` compares
   * resourceVersion before and after (a no-op apply keeps it), or for a dry
   * run the content, since a dry run never bumps resourceVersion.
   */
  async applyObject<T extends KubeObject>(
    obj: T,
    options: { dryRun?: boolean; force?: boolean } = {},
  ): Promise<ApplyResult<T>> {
    const namespace = this.#namespaceFor(obj);
    const path = this.#objectPath(obj.apiVersion, obj.kind, obj.metadata.name, namespace);
    const before = await this.#call(
      "GET",
      path,
      { verb: "get", what: path.what },
      { notFoundOk: true },
    );
    const q = new URLSearchParams({
      fieldManager: this.fieldManager,
      force: String(options.force ?? true),
      // Ask the server to refuse unknown or duplicate fields rather than drop them.
      fieldValidation: "Strict",
    });
    if (options.dryRun === true) q.set("dryRun", "All");
    const body = JSON.stringify(applyBody(obj, namespace));
    const after = await this.#call(
      "PATCH",
      { ...path, query: q },
      { verb: options.dryRun === true ? "apply (dry run)" : "apply", what: path.what },
      { body, contentType: "application/apply-patch+yaml" },
    );
    const object = withType(after, obj.apiVersion, obj.kind) as T;
    const created = before === undefined;
    let changed: boolean;
    if (created) changed = true;
    else if (options.dryRun === true) changed = !sameContent(before, object);
    else changed = resourceVersion(before) !== resourceVersion(object);
    return { object, changed, created };
  }

  /** `GET /version`: the server's Kubernetes version. */
  async serverVersion(): Promise<ServerVersion> {
    const v = await this.#call(
      "GET",
      { path: "/version", what: "version" },
      { verb: "get", what: "the server version" },
    );
    if (!isObject(v) || typeof v.gitVersion !== "string") {
      throw new SigferryError(
        "KUBE_API",
        `${this.target.server}/version did not return a Kubernetes version`,
        {
          details: { url: this.#safeUrl("/version") },
        },
      );
    }
    return v as ServerVersion;
  }

  /**
   * Discovery: true when the server serves `kind` in `groupVersion` (e.g.
   * "config.openshift.io/v1", "ImageDigestMirrorSet"); false when it does not
   * or the group version is unknown (404: not OpenShift, or too old). The
   * caller decides what that means.
   */
  async hasResource(groupVersion: string, kind: string): Promise<boolean> {
    const path = groupVersion === "v1" ? "/api/v1" : `/apis/${groupVersion}`;
    const list = await this.#call(
      "GET",
      { path, what: groupVersion },
      { verb: "discover", what: groupVersion },
      { notFoundOk: true },
    );
    if (list === undefined) return false;
    if (!isObject(list) || !Array.isArray(list.resources)) return false;
    return (list.resources as unknown[]).some(
      (r) => isObject(r) && r.kind === kind && typeof r.name === "string" && !r.name.includes("/"),
    );
  }

  #namespaceFor(obj: KubeObject): string | undefined {
    const mapping = this.#mapping(obj.apiVersion, obj.kind);
    if (!mapping.namespaced) return undefined;
    return obj.metadata.namespace ?? this.target.namespace ?? "default";
  }

  #mapping(apiVersion: string, kind: string): { resource: string; namespaced: boolean } {
    const m = MAPPINGS[`${apiVersion}/${kind}`];
    if (m === undefined) {
      throw new SigferryError(
        "INTERNAL",
        `sigferry has no REST mapping for ${kind} (${apiVersion})`,
      );
    }
    return m;
  }

  #objectPath(
    apiVersion: string,
    kind: string,
    name: string,
    namespace?: string,
  ): { path: string; what: string } {
    const m = this.#mapping(apiVersion, kind);
    const root = apiVersion === "v1" ? "/api/v1" : `/apis/${apiVersion}`;
    const namespaceName = namespace ?? this.target.namespace ?? "default";
    const ns = m.namespaced ? `/namespaces/${encodeURIComponent(namespaceName)}` : "";
    const what = m.namespaced
      ? `${m.resource}/${name} in namespace ${namespaceName}`
      : `${m.resource}/${name}`;
    return { path: `${root}${ns}/${m.resource}/${encodeURIComponent(name)}`, what };
  }

  #safeUrl(path: string): string {
    return `${this.target.server}${path}`;
  }

  /** One request with JSON in and out; 404 → undefined when `notFoundOk`; Status failures → SigferryError. */
  async #call(
    method: "GET" | "PATCH",
    at: { path: string; query?: URLSearchParams; what: string },
    op: Op,
    extra: { notFoundOk?: boolean; body?: string; contentType?: string } = {},
  ): Promise<unknown> {
    const url = `${this.target.server}${at.path}${at.query !== undefined ? `?${at.query.toString()}` : ""}`;
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": this.#options.userAgent ?? "sigferry",
    };
    if (this.#auth !== undefined) headers.authorization = this.#auth;
    if (extra.contentType !== undefined) headers["content-type"] = extra.contentType;
    // Every request here is a GET or a server-side apply PATCH: both may be
    // repeated (an apply of the same configuration is idempotent), so the
    // shared policy retries them as they are.
    return withRetry(
      async ({ signal }) => {
        let status: number;
        let text: string;
        let resHeaders: Record<string, string | string[] | undefined>;
        try {
          const res = await request(url, {
            method,
            headers,
            ...(extra.body !== undefined ? { body: extra.body } : {}),
            dispatcher: this.#dispatcher,
            headersTimeout: this.#policy.headersTimeoutMs,
            bodyTimeout: this.#policy.bodyTimeoutMs,
            signal,
          });
          this.#reached = true;
          status = res.statusCode;
          resHeaders = res.headers;
          text = await res.body.text();
        } catch (err) {
          throw this.#transportError(op, at.path, err);
        }
        this.#warnings(resHeaders.warning);
        if (status >= 200 && status < 300) {
          try {
            return JSON.parse(text) as unknown;
          } catch (err) {
            throw new SigferryError(
              "KUBE_API",
              `${op.verb} ${op.what}: the server answered ${status} with a body that is not JSON`,
              {
                cause: err,
                details: { url: this.#safeUrl(at.path), status },
              },
            );
          }
        }
        if (status === 404 && extra.notFoundOk === true) {
          // A 404 about the object itself; the real apiserver answers GET in a missing namespace the same way.
          return undefined;
        }
        const err = this.#statusError(op, at.path, status, text);
        // Why retry: API Priority and Fairness sheds load with 429 and Retry-After;
        // an apiserver restarting or behind a load balancer answers 5xx for a moment.
        if (TRANSIENT_STATUSES.has(status)) {
          markTransient(err, parseRetryAfter(resHeaders["retry-after"]));
        }
        throw err;
      },
      {
        policy: this.#policy,
        what: `${op.verb} ${op.what}`,
        ...(this.#options.signal !== undefined ? { signal: this.#options.signal } : {}),
        ...(this.#options.onRetry !== undefined ? { onRetry: this.#options.onRetry } : {}),
      },
    );
  }

  #warnings(header: string | string[] | undefined): void {
    if (header === undefined || this.#options.onWarning === undefined) return;
    for (const h of Array.isArray(header) ? header : [header]) {
      // RFC 7234 warn-value: 299 - "text"
      const m = /^\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"/.exec(h);
      this.#options.onWarning(m ? m[1]!.replace(/\\(.)/g, "$1") : h);
    }
  }

  #statusError(op: Op, path: string, status: number, text: string): SigferryError {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const st = isStatus(body) ? body : undefined;
    const message = st?.message ?? (text.trim().slice(0, 200) || `HTTP ${status}`);
    const causes = (st?.details?.causes ?? [])
      .map((c) =>
        c.field !== undefined && c.field !== ""
          ? `${c.field}: ${c.message ?? c.reason ?? ""}`
          : (c.message ?? ""),
      )
      .filter((c) => c !== "");
    const details = {
      url: this.#safeUrl(path),
      status,
      ...(st?.reason !== undefined ? { reason: st.reason } : {}),
      ...(causes.length > 0 ? { causes } : {}),
    };
    const prefix = `${op.verb} ${op.what}`;
    let code: ErrorCode = "KUBE_API";
    let text2: string;
    switch (status) {
      case 401:
        code = "AUTH_REQUIRED";
        text2 = `${prefix}: the API server ${this.target.server} did not accept the credentials of context "${this.target.contextName}" (401 ${st?.reason ?? "Unauthorized"}); log in again (oc login) or check the kubeconfig user`;
        break;
      case 403:
        code = "AUTH_DENIED";
        text2 = `${prefix}: forbidden: ${message}`;
        break;
      case 404:
        text2 =
          st?.details?.kind === "namespaces" && st.details.name !== undefined
            ? `${prefix}: the namespace ${st.details.name} does not exist (${message})`
            : `${prefix}: ${message}`;
        break;
      case 409:
        text2 = `${prefix}: conflict: ${message}`;
        break;
      case 422:
        text2 = `${prefix}: the server refused the object as invalid: ${message}`;
        break;
      default:
        text2 = `${prefix}: the server answered ${status}${st?.reason !== undefined ? ` ${st.reason}` : ""}: ${message}`;
    }
    return new SigferryError(code, text2, { details });
  }

  #transportError(op: Op, path: string, err: unknown): SigferryError {
    if (err instanceof SigferryError) return err;
    const codes = errorCodes(err);
    const reason = err instanceof Error ? err.message : String(err);
    const details = {
      url: this.#safeUrl(path),
      ...(codes[0] !== undefined ? { errorCode: codes[0] } : {}),
    };
    const prefix = `${op.verb} ${op.what}`;
    if (
      this.#options.signal?.aborted === true ||
      (!isDeadline(err) &&
        ((err instanceof Error && err.name === "AbortError") ||
          codes.includes("UND_ERR_ABORTED") ||
          codes.includes("ABORT_ERR")))
    ) {
      return new SigferryError("INTERRUPTED", `${prefix}: aborted`, { cause: err, details });
    }
    if (isDeadline(err)) {
      return new SigferryError("TIMEOUT", `${prefix}: ${this.target.server}: ${reason}`, {
        cause: err,
        details,
      });
    }
    if (codes.some((c) => TIMEOUT_CODES.has(c))) {
      return markTransient(
        new SigferryError(
          "TIMEOUT",
          `${prefix}: ${this.target.server} did not answer in time (${reason})`,
          {
            cause: err,
            details,
          },
        ),
      );
    }
    if (codes.some(isTlsCode)) {
      return new SigferryError(
        "TLS",
        `${prefix}: TLS connection to ${this.target.server} failed: ${reason}; check certificate-authority in the kubeconfig cluster`,
        { cause: err, details },
      );
    }
    const network = new SigferryError(
      "NETWORK",
      `${prefix}: cannot reach ${this.target.server}: ${reason}`,
      {
        cause: err,
        details,
      },
    );
    return isTransientTransport(err, this.#reached) ? markTransient(network) : network;
  }
}

function withType(v: unknown, apiVersion: string, kind: string): KubeObject {
  if (!isObject(v) || !isObject(v.metadata)) {
    throw new SigferryError("KUBE_API", `the server returned something that is not a ${kind}`);
  }
  return {
    ...v,
    apiVersion: typeof v.apiVersion === "string" ? v.apiVersion : apiVersion,
    kind: typeof v.kind === "string" ? v.kind : kind,
  } as KubeObject;
}

function resourceVersion(v: unknown): string | undefined {
  if (!isObject(v) || !isObject(v.metadata)) return undefined;
  const rv = v.metadata.resourceVersion;
  return typeof rv === "string" ? rv : undefined;
}

/**
 * The applied configuration: the object without the fields the server owns.
 * Why: a resourceVersion would turn the apply into a conditional update that
 * fails on any concurrent change, and an apply body must not carry managedFields.
 */
function applyBody(obj: KubeObject, namespace: string | undefined): KubeObject {
  const { metadata, ...rest } = obj;
  const {
    resourceVersion: _rv,
    uid: _uid,
    creationTimestamp: _ct,
    generation: _gen,
    managedFields: _mf,
    ...meta
  } = metadata;
  delete rest.status;
  // Cluster-scoped objects have no namespace; a namespaced one gets the one it is sent to.
  delete meta.namespace;
  return {
    ...rest,
    metadata: { ...meta, ...(namespace !== undefined ? { namespace } : {}) },
  };
}

/** Same object content, ignoring what changes on every write (resourceVersion, managedFields times). */
function sameContent(a: unknown, b: unknown): boolean {
  return canonicalJson(strip(a)) === canonicalJson(strip(b));
}

function strip(v: unknown): unknown {
  if (!isObject(v)) return v;
  const meta = isObject(v.metadata) ? { ...v.metadata } : {};
  delete meta.resourceVersion;
  delete meta.managedFields;
  delete meta.generation;
  return { ...v, metadata: meta };
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}
