/**
 * A fault-injecting HTTP proxy on 127.0.0.1, put in front of a registry or the
 * store/graph server of the test world. It forwards every request to one
 * upstream (keeping the client's Host header, so that a registry's upload
 * Locations point back at the proxy) and, on the requests it is told to,
 * does something else instead:
 *
 * | kind          | what the client sees                                       | did the upstream act? |
 * |---------------|------------------------------------------------------------|-----------------------|
 * | `reset`       | the connection reset (RST) before any answer              | no                    |
 * | `reset-after` | the connection reset (RST) before any answer              | yes                   |
 * | `stall`       | nothing, ever (until it gives up)                          | no                    |
 * | `stall-body`  | the headers and half the body, then nothing                | yes                   |
 * | `truncate`    | the headers (full Content-Length), half the body, then RST | yes                   |
 * | `429`         | 429 Too Many Requests with Retry-After                     | no                    |
 * | `500` … `504` | that status, empty body                                    | no                    |
 *
 * A response without a body to cut (HEAD, 201, 202) turns `truncate` into
 * `reset-after` and `stall-body` into a stall after the upstream acted.
 *
 * Which requests: `rate` (a fraction, drawn from a seeded PRNG once per request
 * in arrival order, so a seed always gives the same sequence of faults), `at`
 * (request numbers, from 1), or a test's own `decide`. `hold` and `hold-after`
 * (from `decide` only) keep a request pending, before or after the upstream
 * answered, for tests that kill the client at that moment.
 *
 * Counts requests and injected faults; `stop()` closes every connection.
 */
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo, Socket } from "node:net";

/** A fault the proxy can inject. */
export type FaultKind =
  | "reset"
  | "reset-after"
  | "stall"
  | "stall-body"
  | "truncate"
  | "429"
  | "500"
  | "502"
  | "503"
  | "504";

/** Every fault kind, the default set drawn from in rate mode. */
export const FAULT_KINDS: readonly FaultKind[] = [
  "reset",
  "reset-after",
  "stall",
  "stall-body",
  "truncate",
  "429",
  "500",
  "502",
  "503",
  "504",
];

/** What `decide` may answer besides a fault: hold the request, before or after the upstream answered. */
export type Hold = "hold" | "hold-after";

/** One request as the proxy saw it. */
export interface ProxyRequest {
  /** 1-based arrival number. */
  n: number;
  method: string;
  /** Path and query. */
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** One entry of the proxy's log. */
export interface ProxyLogEntry {
  n: number;
  method: string;
  url: string;
  fault?: FaultKind | Hold;
  /** The upstream's status, when the request reached it. */
  status?: number;
}

/** A scripted answer in place of forwarding (e.g. a CDN redirect); return true when answered. */
export type Responder = (req: ProxyRequest, res: http.ServerResponse) => boolean;

export interface FaultProxyOptions {
  /** The upstream, `http://127.0.0.1:<port>` (or https, with `ca`). The proxy itself speaks plain http. */
  target: string;
  /** CA (PEM) of an https upstream. */
  ca?: string;
  /** Fraction of requests to fault (0..1), chosen with the seeded PRNG. */
  rate?: number;
  /** PRNG seed (default 1). */
  seed?: number;
  /** Kinds rate mode draws from (default FAULT_KINDS). */
  kinds?: readonly FaultKind[];
  /** Faults by request number (1-based); applied before rate mode. */
  at?: Record<number, FaultKind>;
  /** A test's own rule, asked first. */
  decide?: (req: ProxyRequest) => FaultKind | Hold | undefined;
  /** Called when a request is being held (for `hold-after`: once the upstream answered). */
  onHold?: (req: ProxyRequest) => void;
  /** Answers some requests itself instead of forwarding them. */
  respond?: Responder;
  /** The Retry-After of a 429 (default "1"). */
  retryAfter?: string | (() => string);
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** `127.0.0.1:<port>`. */
  host: string;
  /** Requests received so far. */
  count(): number;
  /** Faults injected so far (holds included), by kind. */
  faults(): Map<FaultKind | Hold, number>;
  /** Total faults injected so far (holds included). */
  injected(): number;
  /** Every request, in arrival order. */
  log: ProxyLogEntry[];
  /** Changes the rate (and reseeds) for the requests to come. */
  setRate(rate: number, seed?: number): void;
  /** Closes the server and every connection, held ones included. Idempotent. */
  stop(): Promise<void>;
}

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
]);

interface Upstream {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Starts a fault proxy in front of `options.target`. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const tls = target.protocol === "https:";
  const agent = tls
    ? new https.Agent({
        keepAlive: true,
        maxSockets: 32,
        ...(options.ca ? { ca: options.ca } : {}),
      })
    : new http.Agent({ keepAlive: true, maxSockets: 32 });
  const sockets = new Set<Socket>();
  const log: ProxyLogEntry[] = [];
  const faultCounts = new Map<FaultKind | Hold, number>();
  let n = 0;
  let rate = options.rate ?? 0;
  let random = mulberry32(options.seed ?? 1);
  const kinds = options.kinds ?? FAULT_KINDS;

  const choose = (req: ProxyRequest): FaultKind | Hold | undefined => {
    const decided = options.decide?.(req);
    if (decided !== undefined) return decided;
    const fixed = options.at?.[req.n];
    if (fixed !== undefined) return fixed;
    if (rate <= 0) return undefined;
    // Two draws per request whatever the outcome, so the sequence depends on the seed only.
    const hit = random() < rate;
    const pick = kinds[Math.floor(random() * kinds.length)];
    return hit ? pick : undefined;
  };

  const forward = (req: http.IncomingMessage, body: Buffer): Promise<Upstream> =>
    new Promise((resolve, reject) => {
      const headers = { ...req.headers };
      for (const h of HOP_BY_HOP) delete headers[h];
      headers["content-length"] = String(body.length);
      if (body.length === 0 && req.method !== "POST" && req.method !== "PUT") {
        delete headers["content-length"];
      }
      const up = (tls ? https : http).request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers,
          agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 502,
              headers: res.headers,
              body: Buffer.concat(chunks),
            }),
          );
          res.on("error", reject);
        },
      );
      up.on("error", reject);
      up.end(body);
    });

  const relayHead = (res: http.ServerResponse, up: Upstream, head: boolean): void => {
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(up.headers)) {
      if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    }
    // A HEAD keeps the upstream's Content-Length (the size of what a GET would return).
    if (!head) headers["content-length"] = String(up.body.length);
    res.writeHead(up.status, headers);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const info: ProxyRequest = {
        n: ++n,
        method: req.method ?? "GET",
        url: req.url ?? "/",
        headers: req.headers,
      };
      const entry: ProxyLogEntry = { n: info.n, method: info.method, url: info.url };
      log.push(entry);
      if (options.respond?.(info, res) === true) return;
      const fault = choose(info);
      if (fault !== undefined) {
        entry.fault = fault;
        faultCounts.set(fault, (faultCounts.get(fault) ?? 0) + 1);
      }
      const head = info.method === "HEAD";
      const socket = req.socket;
      const reset = (): void => {
        socket.resetAndDestroy();
      };
      switch (fault) {
        case "reset":
          reset();
          return;
        case "stall":
        case "hold":
          if (fault === "hold") options.onHold?.(info);
          return; // never answered; the socket closes when the client gives up or on stop()
        case "429":
        case "500":
        case "502":
        case "503":
        case "504": {
          const status = Number(fault);
          const extra: http.OutgoingHttpHeaders =
            status === 429
              ? {
                  "retry-after":
                    typeof options.retryAfter === "function"
                      ? options.retryAfter()
                      : (options.retryAfter ?? "1"),
                }
              : {};
          res.writeHead(status, { "content-length": 0, ...extra });
          res.end();
          return;
        }
        default:
          break;
      }
      forward(req, body).then(
        (up) => {
          entry.status = up.status;
          if (socket.destroyed) return;
          const cuttable = !head && up.body.length >= 2;
          switch (fault) {
            case "reset-after":
              reset();
              return;
            case "hold-after":
              options.onHold?.(info);
              return;
            case "truncate":
              if (!cuttable) {
                reset();
                return;
              }
              relayHead(res, up, head);
              res.write(up.body.subarray(0, Math.floor(up.body.length / 2)), () => reset());
              return;
            case "stall-body":
              if (!cuttable) return;
              relayHead(res, up, head);
              res.write(up.body.subarray(0, Math.floor(up.body.length / 2)));
              return;
            default:
              relayHead(res, up, head);
              res.end(head ? undefined : up.body);
          }
        },
        () => {
          // The upstream is gone: as a gateway would.
          if (socket.destroyed) return;
          res.writeHead(502, { "content-length": 0 });
          res.end();
        },
      );
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let stopping: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    count: () => n,
    faults: () => new Map(faultCounts),
    injected: () => [...faultCounts.values()].reduce((a, b) => a + b, 0),
    log,
    setRate: (r, seed) => {
      rate = r;
      if (seed !== undefined) random = mulberry32(seed);
    },
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        agent.destroy();
      });
      return stopping;
    },
  };
}
