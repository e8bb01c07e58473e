/**
 * Loads the kubeconfig the way kubectl and oc do, for what `oc login` writes:
 * a cluster (server, CA data or file, or insecure-skip-tls-verify), a user (a
 * bearer token or token file, a client certificate, or username/password), and
 * a context tying them together with an optional namespace.
 *
 * Where it comes from (https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/):
 * `--kubeconfig` alone if given; else every file in KUBECONFIG (a
 * path-delimiter-separated list; missing files are skipped), merged so that
 * the first file to set a value wins (a named cluster, user or context is
 * taken whole from the first file that defines it; likewise current-context);
 * else ~/.kube/config. Relative paths inside a file are relative to that file.
 */
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { yamlLib } from "../core/yaml.js";
import { SigferryError } from "../errors.js";
import { registerSecret } from "../redact.js";

/** Everything the Kubernetes client needs to reach and authenticate to one API server. */
export interface KubeTarget {
  /** API server URL, e.g. https://api.cluster.example.com:6443. */
  server: string;
  /** PEM bundle of the CAs trusted for the server (from certificate-authority[-data]). */
  ca?: string;
  insecureSkipTlsVerify?: boolean;
  /** Bearer token (from token or tokenFile). */
  token?: string;
  /** PEM client certificate and key, for x509 client authentication. */
  clientCert?: string;
  clientKey?: string;
  basic?: { username: string; password: string };
  contextName: string;
  namespace?: string;
}

/** Where to look: flags, and the environment and home directory to read KUBECONFIG and ~ from. */
export interface LoadKubeconfigOptions {
  /** `--kubeconfig`: this file only. */
  path?: string;
  /** `--context`: instead of current-context. */
  context?: string;
  env: Record<string, string | undefined>;
  home: string;
}

type Raw = Record<string, unknown>;

/** A named entry with the file it came from. */
interface Named {
  name: string;
  body: Raw;
  file: string;
}

interface Merged {
  files: string[];
  currentContext?: string;
  clusters: Map<string, Named>;
  users: Map<string, Named>;
  contexts: Map<string, Named>;
}

function isRaw(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function invalid(message: string, file: string | string[]): SigferryError {
  const files = Array.isArray(file) ? file : [file];
  return new SigferryError("INVALID_CONFIG", message, {
    details: { file: files.join(path.delimiter) },
  });
}

function filesLabel(files: string[]): string {
  return files.length === 1 ? files[0]! : files.join(", ");
}

/** The files to read, and whether a missing one is an error (only an explicit --kubeconfig or the default). */
function sources(opts: LoadKubeconfigOptions): { files: string[]; listed: boolean } {
  if (opts.path !== undefined && opts.path !== "") return { files: [opts.path], listed: false };
  const env = opts.env.KUBECONFIG;
  if (env !== undefined && env !== "") {
    const seen = new Set<string>();
    const files: string[] = [];
    for (const f of env.split(path.delimiter)) {
      if (f === "" || seen.has(f)) continue;
      seen.add(f);
      files.push(f);
    }
    return { files, listed: true };
  }
  return { files: [path.join(opts.home, ".kube", "config")], listed: false };
}

async function readDoc(file: string): Promise<Raw | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SigferryError("INPUT_READ_FAILED", `cannot read kubeconfig ${file}`, {
      cause: err,
      details: { file },
    });
  }
  let doc: unknown;
  try {
    // kubectl parses kubeconfigs as YAML 1.1 (sigs.k8s.io/yaml).
    doc = yamlLib().parse(text, { version: "1.1" });
  } catch (err) {
    throw invalid(`kubeconfig ${file} is not valid YAML: ${(err as Error).message}`, file);
  }
  if (doc === null || doc === undefined) return {};
  if (!isRaw(doc)) throw invalid(`kubeconfig ${file} is not a YAML mapping`, file);
  return doc;
}

function mergeList(into: Map<string, Named>, list: unknown, member: string, file: string): void {
  if (list === undefined || list === null) return;
  if (!Array.isArray(list)) throw invalid(`kubeconfig ${file}: "${member}s" must be a list`, file);
  for (const item of list as unknown[]) {
    if (!isRaw(item) || typeof item.name !== "string") {
      throw invalid(`kubeconfig ${file}: every entry of "${member}s" needs a name`, file);
    }
    const body = item[member];
    // First file (and first entry) to set a name wins; later ones never change it.
    if (!into.has(item.name))
      into.set(item.name, { name: item.name, body: isRaw(body) ? body : {}, file });
  }
}

async function loadMerged(opts: LoadKubeconfigOptions): Promise<Merged> {
  const { files, listed } = sources(opts);
  const merged: Merged = { files: [], clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const file of files) {
    const doc = await readDoc(file);
    if (doc === undefined) {
      if (listed) continue;
      const how =
        opts.path !== undefined && opts.path !== "" ? "--kubeconfig" : "the default kubeconfig";
      throw new SigferryError(
        "INPUT_READ_FAILED",
        `${how} ${file} does not exist${how === "--kubeconfig" ? "" : "; log in with oc login, set KUBECONFIG or pass --kubeconfig"}`,
        { details: { file } },
      );
    }
    merged.files.push(file);
    const cc = doc["current-context"];
    if (merged.currentContext === undefined && typeof cc === "string" && cc !== "")
      merged.currentContext = cc;
    mergeList(merged.clusters, doc.clusters, "cluster", file);
    mergeList(merged.users, doc.users, "user", file);
    mergeList(merged.contexts, doc.contexts, "context", file);
  }
  if (merged.files.length === 0) {
    throw new SigferryError(
      "INPUT_READ_FAILED",
      `none of the files in KUBECONFIG exists (${filesLabel(files)})`,
      { details: { file: files.join(path.delimiter) } },
    );
  }
  return merged;
}

function str(entry: Named, key: string): string | undefined {
  const v = entry.body[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string")
    throw invalid(
      `kubeconfig ${entry.file}: "${key}" of "${entry.name}" must be a string`,
      entry.file,
    );
  return v;
}

/** Reads a file a kubeconfig entry points at, relative to that kubeconfig. */
async function readReferenced(entry: Named, key: string, rel: string): Promise<string> {
  const file = path.resolve(path.dirname(entry.file), rel);
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new SigferryError(
      "INPUT_READ_FAILED",
      `cannot read ${key} ${file} (named by "${entry.name}" in ${entry.file})`,
      { cause: err, details: { file } },
    );
  }
}

function decodeData(entry: Named, key: string, data: string): string {
  const clean = data.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) {
    throw invalid(
      `kubeconfig ${entry.file}: "${key}" of "${entry.name}" is not base64`,
      entry.file,
    );
  }
  return Buffer.from(clean, "base64").toString("utf8");
}

/** PEM from `<key>-data` (base64) or, failing that, the file `<key>`: the -data form wins, as in kubectl. */
async function pemOf(entry: Named, key: string): Promise<string | undefined> {
  const data = str(entry, `${key}-data`);
  if (data !== undefined) return decodeData(entry, `${key}-data`, data);
  const file = str(entry, key);
  return file === undefined ? undefined : readReferenced(entry, key, file);
}

async function clusterPart(
  cluster: Named,
  contextName: string,
): Promise<Pick<KubeTarget, "server" | "ca" | "insecureSkipTlsVerify">> {
  const server = str(cluster, "server");
  if (server === undefined) {
    throw invalid(
      `cluster "${cluster.name}" (context "${contextName}") in ${cluster.file} has no server`,
      cluster.file,
    );
  }
  try {
    const u = new URL(server);
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error(u.protocol);
  } catch {
    throw invalid(
      `cluster "${cluster.name}" in ${cluster.file}: server "${server}" is not an http(s) URL`,
      cluster.file,
    );
  }
  const insecure = cluster.body["insecure-skip-tls-verify"] === true;
  const ca = await pemOf(cluster, "certificate-authority");
  if (insecure && ca !== undefined) {
    // kubectl refuses this combination too: it is almost always a mistake.
    throw invalid(
      `cluster "${cluster.name}" in ${cluster.file} sets both a certificate authority and insecure-skip-tls-verify; keep one`,
      cluster.file,
    );
  }
  return {
    server: server.replace(/\/+$/, ""),
    ...(ca === undefined ? {} : { ca }),
    ...(insecure ? { insecureSkipTlsVerify: true } : {}),
  };
}

async function userPart(
  user: Named,
): Promise<Pick<KubeTarget, "token" | "clientCert" | "clientKey" | "basic">> {
  const out: Pick<KubeTarget, "token" | "clientCert" | "clientKey" | "basic"> = {};
  const tokenFile = str(user, "tokenFile");
  const token = str(user, "token");
  // client-go: when both are set, the token file's content takes precedence over token.
  if (tokenFile !== undefined)
    out.token = (await readReferenced(user, "tokenFile", tokenFile)).trim();
  else if (token !== undefined) out.token = token;
  if (out.token === "") delete out.token;

  const cert = await pemOf(user, "client-certificate");
  const key = await pemOf(user, "client-key");
  if ((cert === undefined) !== (key === undefined)) {
    throw invalid(
      `user "${user.name}" in ${user.file} has a client ${cert === undefined ? "key but no certificate" : "certificate but no key"}; client-certificate[-data] and client-key[-data] go together`,
      user.file,
    );
  }
  if (cert !== undefined && key !== undefined) {
    out.clientCert = cert;
    out.clientKey = key;
  }

  const username = str(user, "username");
  const password = user.body.password;
  if (username !== undefined) {
    out.basic = {
      username,
      // YAML may read a numeric password as a number; anything else is no password.
      password:
        typeof password === "string"
          ? password
          : typeof password === "number"
            ? String(password)
            : "",
    };
  }
  if (out.token !== undefined && out.basic !== undefined) {
    throw invalid(
      `user "${user.name}" in ${user.file} has both a token and a username/password; only one is allowed`,
      user.file,
    );
  }
  const hasCreds =
    out.token !== undefined || out.clientCert !== undefined || out.basic !== undefined;
  if (!hasCreds && (user.body.exec !== undefined || user.body["auth-provider"] !== undefined)) {
    throw invalid(
      `user "${user.name}" in ${user.file} authenticates through an ${user.body.exec !== undefined ? "exec credential plugin" : "auth-provider"}, which sigferry does not run; use a kubeconfig with a token (oc login, oc whoami -t) or a client certificate`,
      user.file,
    );
  }
  registerSecret(out.token);
  registerSecret(out.clientKey);
  registerSecret(out.basic?.password);
  return out;
}

/**
 * Loads the kubeconfig (--kubeconfig, else KUBECONFIG merged, else
 * ~/.kube/config) and resolves one context into a KubeTarget; throws
 * INVALID_CONFIG naming the file and the missing context, cluster or user, or
 * INPUT_READ_FAILED for a file that cannot be read.
 */
export async function loadKubeconfig(opts: LoadKubeconfigOptions): Promise<KubeTarget> {
  const merged = await loadMerged(opts);
  const where = filesLabel(merged.files);
  const contextName =
    opts.context !== undefined && opts.context !== "" ? opts.context : merged.currentContext;
  if (contextName === undefined) {
    throw invalid(`no current-context in ${where}; pass --context`, merged.files);
  }
  const context = merged.contexts.get(contextName);
  if (context === undefined) {
    const known = [...merged.contexts.keys()];
    throw invalid(
      `context "${contextName}" not found in ${where}${known.length > 0 ? ` (contexts: ${known.join(", ")})` : ""}`,
      merged.files,
    );
  }
  const clusterName = str(context, "cluster");
  if (clusterName === undefined)
    throw invalid(`context "${contextName}" in ${context.file} names no cluster`, context.file);
  const cluster = merged.clusters.get(clusterName);
  if (cluster === undefined) {
    throw invalid(
      `cluster "${clusterName}" (context "${contextName}") not found in ${where}`,
      merged.files,
    );
  }
  const userName = str(context, "user");
  let userFields: Awaited<ReturnType<typeof userPart>> = {};
  if (userName !== undefined) {
    const user = merged.users.get(userName);
    if (user === undefined) {
      throw invalid(
        `user "${userName}" (context "${contextName}") not found in ${where}`,
        merged.files,
      );
    }
    userFields = await userPart(user);
  }
  const namespace = str(context, "namespace");
  return {
    ...(await clusterPart(cluster, contextName)),
    ...userFields,
    contextName,
    ...(namespace === undefined ? {} : { namespace }),
  };
}
