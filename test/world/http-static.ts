/**
 * The signature stores and the update-graph service of the test world: one
 * node:http server on 127.0.0.1, port 0.
 *
 * - `GET|HEAD /pub/openshift-v4/signatures/openshift/release/sha256=<hex>/signature-<n>`:
 *   the primary store, laid out like https://mirror.openshift.com (404 when absent).
 * - `GET|HEAD /openshift-release/official/signatures/openshift/release/...`: the
 *   secondary store, laid out like https://storage.googleapis.com/openshift-release/official/...
 * - `GET /api/upgrades_info/v1/graph?channel=…&arch=…`: the update graph, answering
 *   like Cincinnati (openshift/cincinnati commons/src/errors.rs and the
 *   channel-filter / arch-filter plugins): 406 `invalid_content_type` unless the
 *   Accept header is exactly application/json (or a wildcard of it); 400
 *   `missing_params` without channel or arch; 400 `invalid_params` when they do
 *   not match Cincinnati's regexes; an empty graph for a well-formed unknown channel.
 *
 * Counts requests per path; faults can be injected per path prefix.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";

/** Root paths of the two stores and of the graph endpoint. */
export const STORE_PATHS = {
  primary: "/pub/openshift-v4/signatures/openshift/release",
  secondary: "/openshift-release/official/signatures/openshift/release",
} as const;
export const GRAPH_PATH = "/api/upgrades_info/v1/graph";

/** A store: `sha256=<hex>/signature-<n>` → bytes. Mutable: tests may add or remove files while serving. */
export type StoreContent = Map<string, Uint8Array>;

/** channel → graph arch → graph document. */
export type GraphContent = Record<string, Record<string, unknown>>;

/** A fault: what to do instead of answering, for requests whose path starts with `pathPrefix`. */
export interface Fault {
  pathPrefix: string;
  /** Answer with this status and an empty body. */
  status?: number;
  /** Wait this long before answering (or failing). */
  delayMs?: number;
  /** Close the connection without answering. */
  reset?: boolean;
  /** How many requests it applies to (default: all, until cleared). */
  times?: number;
}

export interface StaticServerOptions {
  primary: StoreContent;
  secondary?: StoreContent;
  graphs: GraphContent;
}

export interface StaticServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Store base URLs, without a trailing slash (what --signature-store takes). */
  stores: { primary: string; secondary: string };
  /** The graph endpoint (what --graph-url takes). */
  graphUrl: string;
  /** The served content, live. */
  content: { primary: StoreContent; secondary: StoreContent; graphs: GraphContent };
  /** Requests seen per path (query string excluded), all methods. */
  counts(): Map<string, number>;
  /** Requests whose path starts with `prefix`. */
  count(prefix?: string): number;
  resetCounts(): void;
  addFault(fault: Fault): void;
  clearFaults(): void;
  /** Idempotent. */
  stop(): Promise<void>;
}

const CHANNEL_RE = /^[0-9a-z\-.]+$/;
const ARCH_RE = /^[0-9a-z]+$/;
const STORE_FILE_RE = /^sha256=[0-9a-f]{64}\/signature-[1-9][0-9]*$/;
const ACCEPTABLE = new Set([
  "application/json",
  "application/vnd.redhat.cincinnati.v1+json",
  "application/*",
  "*/*",
  "*",
]);

function sendJson(res: http.ServerResponse, status: number, body: unknown, head: boolean): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "content-type": "application/json", "content-length": bytes.length });
  res.end(head ? undefined : bytes);
}

/** Starts the store and graph server on 127.0.0.1 (random port). */
export async function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const content = {
    primary: options.primary,
    secondary: options.secondary ?? new Map<string, Uint8Array>(),
    graphs: options.graphs,
  };
  const counters = new Map<string, number>();
  let faults: Fault[] = [];

  const serveStore = (
    store: StoreContent,
    rel: string,
    res: http.ServerResponse,
    head: boolean,
    gcs: boolean,
  ): void => {
    const bytes = STORE_FILE_RE.test(rel) ? store.get(rel) : undefined;
    if (bytes === undefined) {
      // mirror.openshift.com answers an HTML 404; GCS an XML NoSuchKey document.
      const body = gcs
        ? "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
        : "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>";
      res.writeHead(404, {
        "content-type": gcs ? "application/xml; charset=UTF-8" : "text/html; charset=iso-8859-1",
        "content-length": Buffer.byteLength(body),
      });
      res.end(head ? undefined : body);
      return;
    }
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": bytes.length,
      "last-modified": "Sat, 01 Jun 2024 00:00:00 GMT",
    });
    res.end(head ? undefined : Buffer.from(bytes));
  };

  const serveGraph = (
    req: http.IncomingMessage,
    url: URL,
    res: http.ServerResponse,
    head: boolean,
  ): void => {
    // Cincinnati compares the Accept header as a whole; it is not a full Accept parser.
    const accept = (req.headers.accept ?? "").trim();
    if (!ACCEPTABLE.has(accept)) {
      sendJson(
        res,
        406,
        { kind: "invalid_content_type", value: "invalid Content-Type requested" },
        head,
      );
      return;
    }
    const missing = ["arch", "channel"].filter((p) => !url.searchParams.has(p));
    if (missing.length > 0) {
      sendJson(
        res,
        400,
        {
          kind: "missing_params",
          value: `mandatory client parameters missing: ${missing.join(", ")}`,
        },
        head,
      );
      return;
    }
    const channel = url.searchParams.get("channel")!;
    const arch = url.searchParams.get("arch")!;
    if (!CHANNEL_RE.test(channel)) {
      sendJson(
        res,
        400,
        {
          kind: "invalid_params",
          value: `invalid client parameters: channel '${channel}' does not match regex '^[0-9a-z\\-\\.]+$'`,
        },
        head,
      );
      return;
    }
    if (!ARCH_RE.test(arch)) {
      sendJson(
        res,
        400,
        {
          kind: "invalid_params",
          value: `invalid client parameters: arch '${arch}' does not match regex '^[0-9a-z]+$'`,
        },
        head,
      );
      return;
    }
    // A well-formed channel or arch nobody publishes filters every node out: an empty graph, 200.
    const graph = content.graphs[channel]?.[arch] ?? {
      version: 1,
      nodes: [],
      edges: [],
      conditionalEdges: [],
    };
    sendJson(res, 200, graph, head);
  };

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const p = url.pathname;
    counters.set(p, (counters.get(p) ?? 0) + 1);
    const head = req.method === "HEAD";
    if (req.method !== "GET" && !head) {
      res.writeHead(405, { allow: "GET, HEAD", "content-length": 0 });
      res.end();
      return;
    }
    if (p.startsWith(`${STORE_PATHS.primary}/`)) {
      serveStore(content.primary, p.slice(STORE_PATHS.primary.length + 1), res, head, false);
    } else if (p.startsWith(`${STORE_PATHS.secondary}/`)) {
      serveStore(content.secondary, p.slice(STORE_PATHS.secondary.length + 1), res, head, true);
    } else if (p === GRAPH_PATH) {
      serveGraph(req, url, res, head);
    } else {
      res.writeHead(404, { "content-type": "text/plain", "content-length": 10 });
      res.end(head ? undefined : "not found\n");
    }
  };

  const server = http.createServer((req, res) => {
    const p = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const fault = faults.find(
      (f) => p.startsWith(f.pathPrefix) && (f.times === undefined || f.times > 0),
    );
    if (fault === undefined) {
      handle(req, res);
      return;
    }
    if (fault.times !== undefined) fault.times -= 1;
    const act = (): void => {
      if (fault.reset === true) {
        counters.set(p, (counters.get(p) ?? 0) + 1);
        req.socket.destroy();
      } else if (fault.status !== undefined) {
        counters.set(p, (counters.get(p) ?? 0) + 1);
        res.writeHead(fault.status, { "content-length": 0 });
        res.end();
      } else {
        handle(req, res);
      }
    };
    if (fault.delayMs !== undefined) setTimeout(act, fault.delayMs);
    else act();
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  let stopping: Promise<void> | undefined;
  return {
    url,
    stores: {
      primary: `${url}${STORE_PATHS.primary}`,
      secondary: `${url}${STORE_PATHS.secondary}`,
    },
    graphUrl: `${url}${GRAPH_PATH}`,
    content,
    counts: () => new Map(counters),
    count: (prefix = "/") => {
      let n = 0;
      for (const [p, c] of counters) if (p.startsWith(prefix)) n += c;
      return n;
    },
    resetCounts: () => counters.clear(),
    addFault: (fault) => {
      faults.push({ ...fault });
    },
    clearFaults: () => {
      faults = [];
    },
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopping;
    },
  };
}
