/**
 * The HTTP client for the OpenShift update graph (Cincinnati v1 graph API):
 * `GET <graph-url>?channel=<channel>&arch=<arch>` with `Accept: application/json`.
 *
 * The service answers errors as JSON `{"kind": …, "value": …}` (openshift/cincinnati
 * commons/src/errors.rs: 400 for bad or missing parameters and for a channel with
 * no versions, 404 for one that does not exist); we show both fields. Redirects
 * are not followed: pass the final URL as --graph-url.
 */
import { dispatcherFromEnv, request, type Dispatcher } from "../net/undici.js";
import { parseGraph, type UpdateGraph } from "../core/graph.js";
import { graphArch, parseReleaseArch } from "../core/reference.js";
import { SigferryError } from "../errors.js";
import { sourceTransportError } from "../net/errors.js";
import { resolveNetPolicy, type NetPolicy } from "../net/policy.js";
import {
  TRANSIENT_STATUSES,
  markTransient,
  parseRetryAfter,
  withRetry,
  type RetryEvent,
} from "../net/retry.js";

/** The public OpenShift update service. */
export const DEFAULT_GRAPH_URL = "https://api.openshift.com/api/upgrades_info/v1/graph";
/** The largest graph we read (the real stable channels are well under 1 MiB). */
export const MAX_GRAPH_BYTES = 32 * 1024 * 1024;
/** How much of an error answer we read to show the service's message. */
const MAX_ERROR_BYTES = 64 * 1024;

export interface FetchGraphOptions {
  graphUrl: string;
  channel: string;
  /** Graph arch name (amd64, arm64, ppc64le, s390x, multi); tag names (x86_64, aarch64) are mapped. */
  arch: string;
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** Timeout for the headers and between body chunks (ms); shorthand for `net`. */
  timeoutMs?: number;
  /** Timeouts and retry limits; default DEFAULT_NET_POLICY and the SIGFERRY_NET_* variables. */
  net?: Partial<NetPolicy>;
  /** Told before each retry (for --verbose). */
  onRetry?: (event: RetryEvent) => void;
  /** Size cap for the answer; default MAX_GRAPH_BYTES. */
  maxBytes?: number;
}

/** The request URL for one channel and arch: `graphUrl` with channel and arch set in its query. */
export function graphRequestUrl(graphUrl: string, channel: string, arch: string): string {
  let url: URL;
  try {
    url = new URL(graphUrl);
  } catch (cause) {
    throw new SigferryError("USAGE", `--graph-url "${graphUrl}" is not a URL`, { cause });
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new SigferryError("USAGE", `--graph-url "${graphUrl}" is not an http(s) URL`);
  }
  url.searchParams.set("channel", channel);
  url.searchParams.set("arch", graphArch(parseReleaseArch(arch)));
  return url.toString();
}

/** Fetches and validates the update graph of one channel and arch; GRAPH_UNAVAILABLE names the URL, channel and arch. */
export async function fetchGraph(options: FetchGraphOptions): Promise<UpdateGraph> {
  const { channel } = options;
  if (channel.trim() === "") throw new SigferryError("USAGE", "the channel name is empty");
  const url = graphRequestUrl(options.graphUrl, channel, options.arch);
  const arch = graphArch(parseReleaseArch(options.arch));
  const what = `the update graph for channel ${channel}, arch ${arch} (${url})`;
  const details = { url, channel, arch };
  const unavailable = (why: string, extra: Record<string, unknown> = {}, cause?: unknown) =>
    new SigferryError("GRAPH_UNAVAILABLE", `${what}: ${why}`, {
      cause,
      details: { ...details, ...extra },
    });
  const t = options.timeoutMs;
  const policy = resolveNetPolicy({
    ...(t !== undefined ? { headersTimeoutMs: t, bodyTimeoutMs: t } : {}),
    ...options.net,
  });
  const maxBytes = options.maxBytes ?? MAX_GRAPH_BYTES;
  // Without a dispatcher of the caller's, one for this fetch: it carries the connect timeout.
  const dispatcher =
    options.dispatcher ?? dispatcherFromEnv({ connect: { timeout: policy.connectTimeoutMs } });
  let reached = false;

  let text: string;
  try {
    // One idempotent GET, retried as a whole (answer read) under the shared policy.
    text = await withRetry(
      async ({ signal }) => {
        let res: Dispatcher.ResponseData;
        try {
          res = await request(url, {
            method: "GET",
            headers: { accept: "application/json" },
            dispatcher,
            signal,
            headersTimeout: policy.headersTimeoutMs,
            bodyTimeout: policy.bodyTimeoutMs,
          });
        } catch (cause) {
          throw networkError(what, details, cause, options.signal, reached);
        }
        reached = true;

        if (res.statusCode !== 200) {
          const text = await readCapped(res, MAX_ERROR_BYTES, what, details, options.signal).catch(
            () => undefined,
          );
          const said = serviceMessage(text);
          const location = res.headers.location;
          const err = unavailable(
            `the service answered ${res.statusCode}` +
              (said ? `: ${said}` : "") +
              (res.statusCode >= 300 && res.statusCode < 400 && typeof location === "string"
                ? ` (a redirect to ${location}; pass the final URL as --graph-url)`
                : ""),
            { status: res.statusCode },
          );
          // 400 (bad parameters) and 404 (no such channel) will not change; 429 and 5xx may.
          if (TRANSIENT_STATUSES.has(res.statusCode)) {
            markTransient(err, parseRetryAfter(res.headers["retry-after"]));
          }
          throw err;
        }

        const length = Number(res.headers["content-length"]);
        if (Number.isFinite(length) && length > maxBytes) {
          res.body.destroy();
          throw unavailable(`the answer is ${length} bytes, more than the ${maxBytes}-byte limit`);
        }
        const body = await readCapped(res, maxBytes, what, details, options.signal);
        if (body === undefined) {
          throw unavailable(`the answer is larger than the ${maxBytes}-byte limit`);
        }
        return body;
      },
      {
        policy,
        what,
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
        ...(options.onRetry !== undefined ? { onRetry: options.onRetry } : {}),
      },
    );
  } finally {
    if (options.dispatcher === undefined) await dispatcher.close();
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    const start = text.slice(0, 60).replace(/\s+/g, " ");
    throw unavailable(`the answer is not JSON (it starts "${start}")`, {}, cause);
  }
  let graph: UpdateGraph;
  try {
    graph = parseGraph(json, url);
  } catch (cause) {
    throw unavailable((cause as Error).message.replace(`${url} `, "the answer "), {}, cause);
  }
  if (graph.nodes.length === 0) {
    throw unavailable(
      "the channel has no releases for this arch; check the channel name and --arch",
    );
  }
  return graph;
}

/** Reads the body as UTF-8 text, or returns undefined (and stops reading) past `max` bytes. */
async function readCapped(
  res: Dispatcher.ResponseData,
  max: number,
  what: string,
  details: Record<string, unknown>,
  userSignal: AbortSignal | undefined,
): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) {
        res.body.destroy();
        return undefined;
      }
      chunks.push(chunk);
    }
  } catch (cause) {
    throw networkError(what, details, cause, userSignal, true);
  }
  return Buffer.concat(chunks, size).toString("utf8");
}

/** The `kind: value` of a Cincinnati error answer, or the start of a non-JSON one. */
function serviceMessage(text: string | undefined): string | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  try {
    const body = JSON.parse(text) as unknown;
    if (typeof body === "object" && body !== null) {
      const { kind, value } = body as { kind?: unknown; value?: unknown };
      if (typeof kind === "string" || typeof value === "string") {
        return [kind, value].filter((s) => typeof s === "string").join(": ");
      }
    }
  } catch {
    // not JSON: fall through
  }
  return `"${text.slice(0, 200).replace(/\s+/g, " ").trim()}"`;
}

/** Maps a transport failure of the graph service (see net/errors.ts). */
function networkError(
  what: string,
  details: Record<string, unknown>,
  cause: unknown,
  userSignal: AbortSignal | undefined,
  reachedBefore: boolean,
): SigferryError {
  return sourceTransportError(
    {
      what,
      peer: "the service",
      details,
      unreachable: (why) => ({ code: "NETWORK", message: `cannot fetch ${what}: ${why}` }),
    },
    cause,
    userSignal,
    reachedBefore,
  );
}
