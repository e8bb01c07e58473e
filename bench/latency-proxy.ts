/**
 * A TCP proxy on 127.0.0.1 that adds a fixed one-way delay to every chunk in
 * both directions, per connection and in order, so that a loopback service
 * behaves like one a round trip away. It also models the TCP handshake (the
 * first client bytes reach the server one round trip later than the rest),
 * which is what makes a new connection cost more than a kept-alive one.
 *
 * It reads the HTTP/1.1 it carries (requests and responses, bodies skipped by
 * Content-Length or chunked framing) to count requests per kind and status, and
 * counts connections. What it cannot parse (TLS, HTTP/2) is still forwarded and
 * counted as an opaque connection.
 */
import net from "node:net";

/** How to start a proxy. */
export interface LatencyProxyOptions {
  /** The service to forward to. */
  target: { host: string; port: number };
  /** Delay added to every chunk, each way (ms). Default 10. */
  oneWayMs?: number;
  /** Model the TCP handshake: the first client bytes wait one extra round trip. Default true. */
  handshake?: boolean;
  /** A name for reports. */
  label?: string;
}

/** What the proxy saw since the last reset. */
export interface ProxyStats {
  label: string;
  connections: number;
  /** Connections whose bytes were not HTTP/1.1 (e.g. a TLS probe). */
  opaqueConnections: number;
  requests: number;
  /** `<METHOD> <kind>` → count, e.g. `GET manifest`, `HEAD blob`, `GET signature-2`. */
  byKind: Record<string, number>;
  /** `<METHOD> <kind> <status>` → count. */
  byKindStatus: Record<string, number>;
  bytesUp: number;
  bytesDown: number;
}

/** A running proxy. */
export interface LatencyProxy {
  host: string;
  port: number;
  /** `127.0.0.1:<port>` */
  address: string;
  stats(): ProxyStats;
  resetStats(): void;
  /** Closes the listener and every open connection. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The kind of a request from its method and path: registry API calls by
 * object (OCI distribution spec endpoints), signature-store files by slot.
 */
export function requestKind(method: string, target: string): string {
  const p = target.split("?")[0] ?? target;
  let kind = "other";
  const sig = /\/signature-([0-9]+)$/.exec(p);
  if (sig) kind = `signature-${sig[1]}`;
  else if (p === "/v2/" || p === "/v2") kind = "ping";
  else if (/\/blobs\/uploads\/?$/.test(p)) kind = "upload-start";
  else if (/\/blobs\/uploads\/[^/]+$/.test(p)) kind = "upload";
  else if (/\/blobs\/sha256:[0-9a-f]{64}$/.test(p)) kind = "blob";
  else if (/\/manifests\/sha256-[0-9a-f]{64}\.sig$/.test(p)) kind = "sig-manifest";
  else if (/\/manifests\/sha256:[0-9a-f]{64}$/.test(p)) kind = "manifest-by-digest";
  else if (/\/manifests\/[^/]+$/.test(p)) kind = "manifest";
  else if (/\/tags\/list$/.test(p)) kind = "tags";
  else if (/\/graph$/.test(p)) kind = "graph";
  else if (/token/.test(p)) kind = "token";
  return `${method} ${kind}`;
}

type Scheduled = { at: number; data: Buffer | null };

/** Delivers chunks to `write` no earlier than their time, in order. */
class DelayLine {
  readonly #queue: Scheduled[] = [];
  #timer: NodeJS.Timeout | undefined;
  #last = 0;
  #queuedBytes = 0;
  constructor(
    private readonly write: (chunk: Buffer) => void,
    private readonly end: () => void,
    private readonly onDrained: () => void,
  ) {}

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  push(at: number, data: Buffer | null): void {
    // Order is kept: a chunk never overtakes one queued before it.
    const when = Math.max(at, this.#last);
    this.#last = when;
    this.#queue.push({ at: when, data });
    if (data) this.#queuedBytes += data.length;
    this.#arm();
  }

  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
  }

  #arm(): void {
    if (this.#timer || this.#queue.length === 0) return;
    const wait = Math.max(0, this.#queue[0]!.at - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, wait);
  }

  #flush(): void {
    const now = performance.now();
    // Timers fire up to ~1 ms early or late; deliver what is due within half a millisecond.
    while (this.#queue.length > 0 && this.#queue[0]!.at <= now + 0.5) {
      const item = this.#queue.shift()!;
      if (item.data === null) {
        this.end();
      } else {
        this.#queuedBytes -= item.data.length;
        this.write(item.data);
      }
    }
    this.onDrained();
    this.#arm();
  }
}

/** Incremental HTTP/1.1 message framing: start lines out, bodies skipped. */
class HttpFramer {
  #buf: Buffer = Buffer.alloc(0);
  #state: "head" | "body" | "chunk-size" | "chunk-data" | "chunk-crlf" | "trailer" | "opaque" =
    "head";
  #remaining = 0;
  constructor(
    private readonly isResponse: boolean,
    /** Called with the start line; for responses returns whether a body may follow. */
    private readonly onStart: (line: string, headers: Map<string, string>) => boolean,
  ) {}

  get opaque(): boolean {
    return this.#state === "opaque";
  }

  feed(chunk: Buffer): void {
    if (this.#state === "opaque") return;
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    for (;;) {
      switch (this.#state) {
        case "head": {
          const end = this.#buf.indexOf("\r\n\r\n");
          if (end < 0) {
            if (this.#buf.length > 0 && !/^[A-Z]/.test(String.fromCharCode(this.#buf[0]!))) {
              this.#state = "opaque";
            }
            if (this.#buf.length > 256 * 1024) this.#state = "opaque";
            return;
          }
          const head = this.#buf.subarray(0, end).toString("latin1");
          this.#buf = this.#buf.subarray(end + 4);
          const [start = "", ...lines] = head.split("\r\n");
          const valid = this.isResponse
            ? /^HTTP\/1\.[01] [0-9]{3}/.test(start)
            : /^[A-Z]+ \S+ HTTP\/1\.[01]$/.test(start);
          if (!valid) {
            this.#state = "opaque";
            return;
          }
          const headers = new Map<string, string>();
          for (const l of lines) {
            const i = l.indexOf(":");
            if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
          }
          const mayHaveBody = this.onStart(start, headers);
          const te = headers.get("transfer-encoding")?.toLowerCase() ?? "";
          const cl = Number(headers.get("content-length") ?? "0");
          if (!mayHaveBody) this.#state = "head";
          else if (te.includes("chunked")) this.#state = "chunk-size";
          else if (cl > 0) {
            this.#remaining = cl;
            this.#state = "body";
          } else if (this.isResponse && !headers.has("content-length")) {
            // Read-until-close body: nothing after it to frame.
            this.#state = "opaque";
            return;
          }
          break;
        }
        case "body": {
          const n = Math.min(this.#remaining, this.#buf.length);
          this.#remaining -= n;
          this.#buf = this.#buf.subarray(n);
          if (this.#remaining > 0) return;
          this.#state = "head";
          break;
        }
        case "chunk-size": {
          const end = this.#buf.indexOf("\r\n");
          if (end < 0) return;
          const size = parseInt(this.#buf.subarray(0, end).toString("latin1").split(";")[0]!, 16);
          this.#buf = this.#buf.subarray(end + 2);
          if (!Number.isFinite(size)) {
            this.#state = "opaque";
            return;
          }
          if (size === 0) this.#state = "trailer";
          else {
            this.#remaining = size;
            this.#state = "chunk-data";
          }
          break;
        }
        case "chunk-data": {
          const n = Math.min(this.#remaining, this.#buf.length);
          this.#remaining -= n;
          this.#buf = this.#buf.subarray(n);
          if (this.#remaining > 0) return;
          this.#state = "chunk-crlf";
          break;
        }
        case "chunk-crlf": {
          if (this.#buf.length < 2) return;
          this.#buf = this.#buf.subarray(2);
          this.#state = "chunk-size";
          break;
        }
        case "trailer": {
          const end = this.#buf.indexOf("\r\n");
          if (end < 0) return;
          const line = this.#buf.subarray(0, end);
          this.#buf = this.#buf.subarray(end + 2);
          if (line.length === 0) this.#state = "head";
          break;
        }
        default:
          return;
      }
    }
  }
}

function emptyStats(label: string): ProxyStats {
  return {
    label,
    connections: 0,
    opaqueConnections: 0,
    requests: 0,
    byKind: {},
    byKindStatus: {},
    bytesUp: 0,
    bytesDown: 0,
  };
}

const bump = (m: Record<string, number>, k: string): void => {
  m[k] = (m[k] ?? 0) + 1;
};

/** Starts a latency proxy in front of `target`. */
export async function startLatencyProxy(options: LatencyProxyOptions): Promise<LatencyProxy> {
  const delay = options.oneWayMs ?? 10;
  const handshake = options.handshake ?? true;
  const label = options.label ?? `${options.target.host}:${options.target.port}`;
  let stats = emptyStats(label);
  const sockets = new Set<net.Socket>();
  const timers = new Set<DelayLine>();
  const HIGH_WATER = 1024 * 1024;

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const acceptedAt = performance.now();
    stats.connections++;
    const upstream = net.connect({
      port: options.target.port,
      host: options.target.host,
      allowHalfOpen: true,
    });
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let counted = stats;
    let opaqueCounted = false;

    // Requests in flight on this connection, to pair each response with its request.
    const pending: { kind: string; head: boolean }[] = [];
    const reqFramer = new HttpFramer(false, (line) => {
      const [method = "?", target = "?"] = line.split(" ");
      const kind = requestKind(method, target);
      pending.push({ kind, head: method === "HEAD" });
      counted.requests++;
      bump(counted.byKind, kind);
      return true;
    });
    const resFramer = new HttpFramer(true, (line) => {
      const status = Number(line.split(" ")[1]);
      if (status >= 100 && status < 200) return false;
      const req = pending.shift();
      bump(counted.byKindStatus, `${req?.kind ?? "?"} ${status}`);
      return !(req?.head === true || status === 204 || status === 304);
    });
    const noteOpaque = (): void => {
      if (!opaqueCounted && (reqFramer.opaque || resFramer.opaque)) {
        opaqueCounted = true;
        counted.opaqueConnections++;
      }
    };

    const toUpstream = new DelayLine(
      (c) => upstream.write(c),
      () => upstream.end(),
      () => {
        if (toUpstream.queuedBytes < HIGH_WATER) client.resume();
      },
    );
    const toClient = new DelayLine(
      (c) => client.write(c),
      () => client.end(),
      () => {
        if (toClient.queuedBytes < HIGH_WATER) upstream.resume();
      },
    );
    timers.add(toUpstream);
    timers.add(toClient);
    // SYN, SYN-ACK: the client's first bytes leave one round trip after it connected.
    const firstSend = handshake ? acceptedAt + 2 * delay : acceptedAt;

    client.on("data", (c: Buffer) => {
      counted = stats;
      counted.bytesUp += c.length;
      reqFramer.feed(c);
      noteOpaque();
      toUpstream.push(Math.max(performance.now(), firstSend) + delay, c);
      if (toUpstream.queuedBytes >= HIGH_WATER) client.pause();
    });
    upstream.on("data", (c: Buffer) => {
      counted = stats;
      counted.bytesDown += c.length;
      resFramer.feed(c);
      noteOpaque();
      toClient.push(performance.now() + delay, c);
      if (toClient.queuedBytes >= HIGH_WATER) upstream.pause();
    });
    client.on("end", () => toUpstream.push(performance.now() + delay, null));
    upstream.on("end", () => toClient.push(performance.now() + delay, null));
    const close = (): void => {
      toUpstream.clear();
      toClient.clear();
      timers.delete(toUpstream);
      timers.delete(toClient);
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close);
    upstream.on("error", close);
    // Let bytes still in the delay line arrive before tearing the other side down.
    client.on("close", () => setTimeout(close, delay * 2 + 5));
    upstream.on("close", () => setTimeout(close, delay * 2 + 5));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  let stopping: Promise<void> | undefined;
  return {
    host: "127.0.0.1",
    port,
    address: `127.0.0.1:${port}`,
    stats: () => structuredClone(stats),
    resetStats: () => {
      stats = emptyStats(label);
    },
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        for (const t of timers) t.clear();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return stopping;
    },
  };
}

/** A proxy running in a worker thread; stats are asked for by message. */
export interface WorkerProxy {
  host: string;
  port: number;
  address: string;
  stats(): Promise<ProxyStats>;
  resetStats(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a latency proxy in its own worker thread, so that its timers do not
 * wait behind whatever else the calling thread serves (the store server of the
 * world runs in the bench's main thread).
 */
export async function startLatencyProxyInWorker(
  options: LatencyProxyOptions,
): Promise<WorkerProxy> {
  const { Worker } = await import("node:worker_threads");
  // The worker is TypeScript too: it registers tsx (as `--import tsx` did here) before loading it.
  const tsx = import.meta.resolve("tsx/esm/api");
  const script = new URL("./proxy-worker.ts", import.meta.url).href;
  const worker = new Worker(
    `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(script)}); });`,
    { eval: true, workerData: options },
  );
  let seq = 0;
  const waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void }
  >();
  worker.on("message", (m: { id: number; value: unknown }) => {
    waiting.get(m.id)?.resolve(m.value);
    waiting.delete(m.id);
  });
  worker.on("error", (err) => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  });
  const ask = <T>(op: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq;
      waiting.set(id, { resolve: (v) => resolve(v as T), reject });
      worker.postMessage({ id, op });
    });
  const { port } = await ask<{ port: number }>("address");
  let stopping: Promise<void> | undefined;
  return {
    host: "127.0.0.1",
    port,
    address: `127.0.0.1:${port}`,
    stats: () => ask<ProxyStats>("stats"),
    resetStats: () => ask<undefined>("reset").then(() => undefined),
    stop: () => {
      stopping ??= ask<undefined>("stop").then(async () => {
        await worker.terminate();
      });
      return stopping;
    },
  };
}
