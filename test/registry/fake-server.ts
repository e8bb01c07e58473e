/**
 * A scripted HTTP server on 127.0.0.1 for what the real registry will not do on
 * request: redirect to a CDN, lie about digests, paginate tags, hang. Records
 * every request it receives.
 */
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";

/** One request as the server saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A running fake server. */
export interface FakeServer {
  /** http://127.0.0.1:port */
  url: string;
  /** 127.0.0.1:port */
  host: string;
  requests: SeenRequest[];
  stop(): Promise<void>;
}

/** Handles one request; the body has been read already. */
export type FakeHandler = (req: SeenRequest, res: ServerResponse, server: FakeServer) => void;

/** Starts a fake server answering with `handler`. */
export async function startFakeServer(handler: FakeHandler): Promise<FakeServer> {
  const requests: SeenRequest[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const seen: SeenRequest = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(seen);
      handler(seen, res, self);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const self: FakeServer = {
    url: `http://${host}`,
    host,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return self;
}
