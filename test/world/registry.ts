/**
 * The real CNCF distribution registry (Debian's docker-registry 2.8) as a plain
 * process on 127.0.0.1, configured by a config.yml in a temp dir: plain http,
 * TLS (a throw-away CA and an IP-SAN server certificate), htpasswd (bcrypt)
 * or token auth (test/world/token-issuer.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { access, constants, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { stringify } from "yaml";
import { htpasswdLine } from "./htpasswd.js";
import { makeServerTls } from "./openssl.js";
import type { TokenIssuer } from "./token-issuer.js";

/** Where Debian's docker-registry package installs the registry. */
export const REGISTRY_BIN = "/usr/bin/docker-registry";

/** How to start a registry. */
export interface StartRegistryOptions {
  /** Serve https with a fresh CA (RegistryHandle.caPem / caFile). */
  tls?: boolean;
  /** htpasswd auth with this one user (bcrypt). */
  htpasswd?: { username: string; password: string };
  /** Docker token auth against a running issuer. */
  token?: { issuer: TokenIssuer };
  /** Storage root to use (kept on stop: the caller owns it); default a temp dir removed on stop. */
  dir?: string;
}

/** A running registry. */
export interface RegistryHandle {
  /** 127.0.0.1:port */
  host: string;
  /** http(s)://127.0.0.1:port */
  url: string;
  caFile?: string;
  caPem?: string;
  storageDir: string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bind to port 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function ping(url: string, caPem: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = `${url}/v2/`;
    const req = url.startsWith("https:")
      ? httpsRequest(target, { ca: caPem, timeout: 2000 })
      : httpRequest(target, { timeout: 2000 });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  // An unref'd timer, so a registry that stops at once does not keep the caller alive for 5 s.
  const grace = new Promise<false>((r) => setTimeout(() => r(false), 5000).unref());
  const killed = await Promise.race([exited.then(() => true), grace]);
  if (!killed) {
    child.kill("SIGKILL");
    await exited;
  }
}

/** Starts docker-registry with the asked-for TLS and auth; resolves once GET /v2/ answers. */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RegistryHandle> {
  try {
    await access(REGISTRY_BIN, constants.X_OK);
  } catch {
    throw new Error(
      `${REGISTRY_BIN} not found: the tests need the CNCF distribution registry (apt-get install -y docker-registry)`,
    );
  }
  if (opts.htpasswd && opts.token)
    throw new Error("startRegistry: choose htpasswd or token auth, not both");

  const work = await mkdtemp(join(tmpdir(), "sigferry-registry-"));
  const storageDir = opts.dir ?? join(work, "storage");
  const cleanup = async (): Promise<void> => {
    await rm(work, { recursive: true, force: true });
  };
  try {
    await mkdir(storageDir, { recursive: true });
    const tls = opts.tls ? await makeServerTls(work) : undefined;
    let auth: Record<string, unknown> | undefined;
    if (opts.htpasswd) {
      const file = join(work, "htpasswd");
      await writeFile(
        file,
        `${await htpasswdLine(opts.htpasswd.username, opts.htpasswd.password)}\n`,
      );
      auth = { htpasswd: { realm: "sigferry-test", path: file } };
    } else if (opts.token) {
      const { issuer } = opts.token;
      auth = {
        token: {
          realm: issuer.realm,
          service: issuer.service,
          issuer: issuer.issuer,
          rootcertbundle: issuer.certFile,
        },
      };
    }

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const host = `127.0.0.1:${port}`;
      const url = `${tls ? "https" : "http"}://${host}`;
      const config = {
        version: 0.1,
        log: { level: "warn", accesslog: { disabled: true } },
        storage: {
          filesystem: { rootdirectory: storageDir },
          delete: { enabled: true },
          maintenance: { uploadpurging: { enabled: false } },
        },
        http: {
          addr: host,
          secret: randomBytes(16).toString("hex"),
          ...(tls ? { tls: { certificate: tls.certFile, key: tls.keyFile } } : {}),
        },
        ...(auth ? { auth } : {}),
      };
      const configFile = join(work, "config.yml");
      await writeFile(configFile, stringify(config));

      // A clean environment: REGISTRY_* variables would override the config file.
      const child = spawn(REGISTRY_BIN, ["serve", configFile], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      const collect = (chunk: Buffer): void => {
        output = (output + chunk.toString("utf8")).slice(-16_384);
      };
      child.stdout?.on("data", collect);
      child.stderr?.on("data", collect);
      let exited = false;
      child.once("exit", () => {
        exited = true;
      });
      // If the test process dies without afterAll, do not leave a registry behind.
      const onExit = (): void => {
        child.kill("SIGKILL");
      };
      process.once("exit", onExit);

      const deadline = Date.now() + 20_000;
      let ready = false;
      while (!exited && Date.now() < deadline) {
        try {
          await ping(url, tls?.caPem);
          ready = true;
          break;
        } catch {
          await delay(50);
        }
      }
      if (!ready) {
        await stopProcess(child);
        process.removeListener("exit", onExit);
        if (/address already in use/i.test(output) && attempt < 5) continue;
        throw new Error(`docker-registry did not start on ${host}:\n${output}`);
      }

      let stopped = false;
      return {
        host,
        url,
        ...(tls ? { caFile: tls.caFile, caPem: tls.caPem } : {}),
        storageDir,
        async stop() {
          if (stopped) return;
          stopped = true;
          await stopProcess(child);
          process.removeListener("exit", onExit);
          await cleanup();
        },
      };
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
}
