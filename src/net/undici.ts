/**
 * The one place sigferry loads undici, and only the parts it uses.
 *
 * `import ... from "undici"` runs undici's index.js, which requires all of it
 * (fetch, WebSocket, EventSource, caches, mock agents): about 20 MiB of RSS
 * (60 MiB against 40 MiB for bare node) and some 80 ms of start-up CPU per
 * process. Agent, EnvHttpProxyAgent and the request API alone cost ~11 MiB.
 *
 * The paths below are undici's private layout (it has no "exports" map, so
 * they resolve, but nothing promises they stay): this is why undici is pinned
 * and bundled. test/net/undici.test.ts loads this module and checks both that
 * index.js stays out and that requests still work; run it after an upgrade.
 *
 * Types come from undici's published declarations: `import type` loads nothing.
 */
import { createRequire } from "node:module";
import type {
  Agent as UndiciAgent,
  Dispatcher,
  EnvHttpProxyAgent as UndiciEnvHttpProxyAgent,
} from "undici";

export type { Dispatcher };

const load = createRequire(import.meta.url);

export const Agent = load("undici/lib/dispatcher/agent.js") as typeof UndiciAgent;
export type Agent = UndiciAgent;

export const EnvHttpProxyAgent = load(
  "undici/lib/dispatcher/env-http-proxy-agent.js",
) as typeof UndiciEnvHttpProxyAgent;
export type EnvHttpProxyAgent = UndiciEnvHttpProxyAgent;

// index.js also gives every dispatcher the request/stream/pipeline/upgrade/connect
// methods, and undici relies on it: ProxyAgent (under EnvHttpProxyAgent) opens
// its tunnel with `client.connect()`. Done here as index.js does it.
const api = load("undici/lib/api/index.js") as {
  request: (
    this: Dispatcher,
    options: Dispatcher.RequestOptions,
  ) => Promise<Dispatcher.ResponseData>;
};
const { prototype } = load("undici/lib/dispatcher/dispatcher.js") as { prototype: object };
Object.assign(prototype, api);

/** undici's own URL check, so a bad URL fails as it did through the top-level request. */
const { parseURL } = load("undici/lib/core/util.js") as {
  parseURL: (url: string | URL) => URL;
};

/** Options of undici's top-level `request`, except that the dispatcher is required. */
export type RequestOptions = Omit<Dispatcher.RequestOptions, "origin" | "path" | "method"> &
  Partial<Pick<Dispatcher.RequestOptions, "method">> & { dispatcher: Dispatcher };

/**
 * undici's top-level `request(url, options)` (index.js makeDispatcher) for
 * the way sigferry calls it. The dispatcher is required: falling back to
 * undici's global one would mean loading lib/global.js, which installs a
 * process-wide Agent that nobody closes.
 */
export function request(
  url: string | URL,
  options: RequestOptions,
): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = options;
  // Checked at run time too: a JavaScript caller or a cast could still omit it.
  if (!dispatcher) {
    throw new TypeError("request: no dispatcher given (sigferry does not use undici's global one)");
  }
  const parsed = parseURL(url);
  return api.request.call(dispatcher, {
    ...rest,
    origin: parsed.origin,
    path: `${parsed.pathname}${parsed.search}`,
    // As undici: no method means PUT with a body, GET without.
    method: rest.method || (rest.body ? "PUT" : "GET"),
  });
}

/** Whether the environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, either case). */
export function proxyFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.https_proxy ?? env.HTTPS_PROXY ?? env.http_proxy ?? env.HTTP_PROXY);
}

/**
 * The dispatcher for sigferry's connections to the internet side (registries,
 * signature stores, the update graph, Red Hat's published keys): through the
 * proxy the environment names, as curl, oc and skopeo go (`HTTPS_PROXY`,
 * `HTTP_PROXY`, `NO_PROXY`), and a plain Agent otherwise. Through a proxy the
 * TLS options of the server connection are `requestTls`; `connect` is the
 * connection to the proxy.
 */
export function dispatcherFromEnv(options: UndiciAgent.Options = {}): Dispatcher {
  if (!proxyFromEnv()) return new Agent(options);
  return new EnvHttpProxyAgent({
    ...options,
    ...(options.connect !== undefined && typeof options.connect === "object"
      ? { requestTls: options.connect }
      : {}),
  });
}
