/**
 * Registry credentials from auth files: containers-auth.json(5), docker's
 * config.json and OpenShift pull secrets all share the shape
 * `{"auths": {"<key>": {"auth": "base64(user:password)"}}}`.
 *
 * Where keys may be `host[:port]`, `host[:port]/namespace[/repo]` (containers
 * per-repository credentials) or a URL as docker writes them
 * (`https://index.docker.io/v1/`, `http://host:port`).
 *
 * Secrets never leave this module in a message: errors name the file and, at
 * most, the key (a host name), never a value.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { SigferryError } from "../errors.js";
import { registerSecret } from "../redact.js";
import type { RegistryCredentials } from "./types.js";

/** Looks up the credentials for a registry (and optionally a repository in it). */
export type CredentialLookup = (
  registry: string,
  repository?: string,
) => RegistryCredentials | undefined;

/** Where to look for auth files. */
export interface LoadCredentialsOptions {
  /** `--auth-file`: when given, the only file read (and it must exist). */
  authFile?: string;
  /** The environment (REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR). */
  env: NodeJS.ProcessEnv;
  /** The home directory (for ~/.docker/config.json). */
  home: string;
}

/** One credential entry of an auth file. */
export interface AuthFileEntry {
  /** Normalised registry host[:port]. */
  registry: string;
  /** Repository path prefix, "" for a registry-wide key. */
  scope: string;
  credentials: RegistryCredentials;
}

interface AuthFile {
  file: string;
  entries: AuthFileEntry[];
}

/** Docker Hub is written under several names; they all mean one registry. */
const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

function canonicalRegistry(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? "docker.io" : lower;
}

/**
 * Splits an auths key into registry and repository scope. A URL key (docker's
 * `https://index.docker.io/v1/`) carries an API path, not a repository, so its
 * path is dropped; a bare `host/ns/repo` key is a per-repository key.
 */
function parseKey(key: string): { registry: string; scope: string } | undefined {
  let rest = key.trim();
  let isUrl = false;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(rest);
  if (scheme) {
    rest = rest.slice(scheme[0].length);
    isUrl = true;
  }
  const slash = rest.indexOf("/");
  const host = slash === -1 ? rest : rest.slice(0, slash);
  if (host === "") return undefined;
  const scope = isUrl || slash === -1 ? "" : rest.slice(slash + 1).replace(/\/+$/, "");
  return { registry: canonicalRegistry(host), scope };
}

function decodeEntry(value: unknown, file: string, key: string): RegistryCredentials | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.auth === "string" && v.auth !== "") {
    const decoded = Buffer.from(v.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) {
      throw new SigferryError(
        "INPUT_READ_FAILED",
        `${file}: the "auth" value for "${key}" is not base64 of user:password`,
        { details: { file } },
      );
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  // Some tools write the two fields separately.
  if (typeof v.username === "string" && typeof v.password === "string" && v.username !== "") {
    return { username: v.username, password: v.password };
  }
  // `{"auth": ""}` is docker's placeholder for a credential helper: nothing to use here.
  return undefined;
}

/** Parses the text of an auth file; exported for tests. Throws INPUT_READ_FAILED naming `file`. */
export function parseAuthFile(text: string, file: string): AuthFileEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The parser's message quotes the offending text, which may be a secret: drop it.
    throw new SigferryError("INPUT_READ_FAILED", `${file}: not valid JSON`, {
      details: { file },
    });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new SigferryError("INPUT_READ_FAILED", `${file}: expected a JSON object`, {
      details: { file },
    });
  }
  const auths = (doc as Record<string, unknown>).auths;
  if (auths === undefined) return [];
  if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
    throw new SigferryError("INPUT_READ_FAILED", `${file}: "auths" is not an object`, {
      details: { file },
    });
  }
  const entries: AuthFileEntry[] = [];
  for (const [key, value] of Object.entries(auths)) {
    const where = parseKey(key);
    if (!where) continue;
    const credentials = decodeEntry(value, file, key);
    if (!credentials) continue;
    registerSecret(credentials.password);
    registerSecret(`${credentials.username}:${credentials.password}`);
    entries.push({ ...where, credentials });
  }
  return entries;
}

async function readAuthFile(file: string, mustExist: boolean): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!mustExist && (code === "ENOENT" || code === "ENOTDIR")) return undefined;
    throw new SigferryError("INPUT_READ_FAILED", `cannot read auth file ${file} (${code})`, {
      cause: err,
      details: { file },
    });
  }
  return { file, entries: parseAuthFile(text, file) };
}

/** The auth files consulted, in order of precedence (containers-auth.json(5), docker config). */
export function authFileCandidates(options: LoadCredentialsOptions): string[] {
  if (options.authFile !== undefined) return [options.authFile];
  const files: string[] = [];
  const env = options.env;
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, "containers", "auth.json"));
  files.push(join(options.home, ".docker", "config.json"));
  return files;
}

function pathCovers(scope: string, repository: string): boolean {
  return scope === "" || repository === scope || repository.startsWith(`${scope}/`);
}

/**
 * Reads the auth files (`--auth-file` only, else REGISTRY_AUTH_FILE,
 * `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json`) and returns a lookup.
 */
export async function loadCredentials(options: LoadCredentialsOptions): Promise<CredentialLookup> {
  const mustExist = options.authFile !== undefined;
  const files: AuthFile[] = [];
  for (const file of authFileCandidates(options)) {
    const loaded = await readAuthFile(file, mustExist);
    if (loaded) files.push(loaded);
  }
  return (registry, repository) => {
    const wanted = canonicalRegistry(registry);
    // The first file that knows the registry wins; inside it, the longest
    // matching repository scope wins (containers-auth.json(5)).
    for (const { entries } of files) {
      let best: AuthFileEntry | undefined;
      for (const entry of entries) {
        if (entry.registry !== wanted) continue;
        if (
          entry.scope !== "" &&
          (repository === undefined || !pathCovers(entry.scope, repository))
        )
          continue;
        if (!best || entry.scope.length > best.scope.length) best = entry;
      }
      if (best) return best.credentials;
    }
    return undefined;
  };
}
