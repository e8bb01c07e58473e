/** Credentials from auth files: where they are looked for, which keys match, and safe failures. */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import { authFileCandidates, loadCredentials } from "../../src/registry/auth.js";

function authJson(entries: Record<string, [string, string] | Record<string, unknown>>): string {
  const auths: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entries)) {
    auths[key] = Array.isArray(value)
      ? { auth: Buffer.from(`${value[0]}:${value[1]}`).toString("base64") }
      : value;
  }
  return JSON.stringify({ auths });
}

async function rejection(promise: Promise<unknown>): Promise<SigferryError> {
  try {
    await promise;
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

describe("loadCredentials", () => {
  let dir: string;
  let home: string;
  let xdg: string;
  let explicit: string;
  let envFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sigferry-auth-"));
    home = join(dir, "home");
    xdg = join(dir, "run");
    await mkdir(join(home, ".docker"), { recursive: true });
    await mkdir(join(xdg, "containers"), { recursive: true });
    explicit = join(dir, "explicit.json");
    envFile = join(dir, "env.json");
    await writeFile(explicit, authJson({ "quay.io": ["explicit", "pw-explicit"] }));
    await writeFile(
      envFile,
      authJson({ "quay.io": ["env", "pw-env"], "env-only.example.com": ["env2", "pw"] }),
    );
    await writeFile(
      join(xdg, "containers", "auth.json"),
      authJson({
        "quay.io": ["xdg", "pw-xdg"],
        "xdg-only.example.com:5000": ["xdg2", "pw"],
      }),
    );
    await writeFile(
      join(home, ".docker", "config.json"),
      authJson({
        "quay.io": ["docker", "pw-docker"],
        "https://index.docker.io/v1/": ["hub", "pw-hub"],
        "http://legacy.example.com:5000/v1/": ["legacy", "pw-legacy"],
        "docker-only.example.com": ["docker2", "pass:with:colons"],
        "helper.example.com": { auth: "" },
      }),
    );
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("uses only --auth-file when it is given", async () => {
    const lookup = await loadCredentials({
      authFile: explicit,
      env: { REGISTRY_AUTH_FILE: envFile, XDG_RUNTIME_DIR: xdg },
      home,
    });
    expect(lookup("quay.io")).toEqual({ username: "explicit", password: "pw-explicit" });
    expect(lookup("docker-only.example.com")).toBeUndefined();
  });

  it("prefers REGISTRY_AUTH_FILE, then XDG_RUNTIME_DIR/containers/auth.json, then ~/.docker/config.json", async () => {
    const all = await loadCredentials({
      env: { REGISTRY_AUTH_FILE: envFile, XDG_RUNTIME_DIR: xdg },
      home,
    });
    expect(all("quay.io")?.username).toBe("env");
    expect(all("env-only.example.com")?.username).toBe("env2");
    expect(all("xdg-only.example.com:5000")?.username).toBe("xdg2");
    expect(all("docker-only.example.com")?.username).toBe("docker2");

    const noEnv = await loadCredentials({ env: { XDG_RUNTIME_DIR: xdg }, home });
    expect(noEnv("quay.io")?.username).toBe("xdg");

    const dockerOnly = await loadCredentials({ env: {}, home });
    expect(dockerOnly("quay.io")?.username).toBe("docker");
    expect(authFileCandidates({ env: {}, home })).toEqual([join(home, ".docker", "config.json")]);
  });

  it("understands docker's URL-style keys, Docker Hub aliases, and passwords with colons", async () => {
    const lookup = await loadCredentials({ env: {}, home });
    expect(lookup("docker.io")).toEqual({ username: "hub", password: "pw-hub" });
    expect(lookup("registry-1.docker.io")?.username).toBe("hub");
    expect(lookup("legacy.example.com:5000")?.username).toBe("legacy");
    expect(lookup("legacy.example.com")).toBeUndefined();
    expect(lookup("docker-only.example.com")?.password).toBe("pass:with:colons");
  });

  it("ignores an empty auth (a credential helper's placeholder)", async () => {
    const lookup = await loadCredentials({ env: {}, home });
    expect(lookup("helper.example.com")).toBeUndefined();
  });

  it("matches per-repository keys by the longest repository prefix", async () => {
    const file = join(dir, "scoped.json");
    await writeFile(
      file,
      authJson({
        "quay.io": ["registry-wide", "a"],
        "quay.io/openshift-release-dev": ["namespace", "b"],
        "quay.io/openshift-release-dev/ocp-release": ["repo", "c"],
      }),
    );
    const lookup = await loadCredentials({ authFile: file, env: {}, home });
    expect(lookup("quay.io", "openshift-release-dev/ocp-release")?.username).toBe("repo");
    expect(lookup("quay.io", "openshift-release-dev/ocp-v4.0-art-dev")?.username).toBe("namespace");
    expect(lookup("quay.io", "openshift-release-devx/other")?.username).toBe("registry-wide");
    expect(lookup("quay.io")?.username).toBe("registry-wide");
  });

  it("reads an OpenShift pull secret, which has the same shape", async () => {
    const file = join(dir, "pull-secret.json");
    await writeFile(
      file,
      JSON.stringify({
        auths: {
          "cloud.openshift.com": { auth: Buffer.from("u:t1").toString("base64"), email: "a@b" },
          "registry.redhat.io": { auth: Buffer.from("u:t2").toString("base64"), email: "a@b" },
        },
      }),
    );
    const lookup = await loadCredentials({ authFile: file, env: {}, home });
    expect(lookup("registry.redhat.io")).toEqual({ username: "u", password: "t2" });
  });

  it("skips default files that do not exist, but fails on a missing --auth-file", async () => {
    const lookup = await loadCredentials({
      env: { REGISTRY_AUTH_FILE: join(dir, "missing.json"), XDG_RUNTIME_DIR: join(dir, "nowhere") },
      home: join(dir, "nohome"),
    });
    expect(lookup("quay.io")).toBeUndefined();
    const err = await rejection(
      loadCredentials({ authFile: join(dir, "missing.json"), env: {}, home }),
    );
    expect(err.code).toBe("INPUT_READ_FAILED");
    expect(err.message).toContain("missing.json");
  });

  it("names the file and not its content when the JSON is bad", async () => {
    const file = join(dir, "broken.json");
    const secret = "c3VwZXI6c2VjcmV0LXZhbHVl";
    await writeFile(file, `{"auths": {"quay.io": {"auth": "${secret}"}}`);
    const err = await rejection(loadCredentials({ authFile: file, env: {}, home }));
    expect(err.code).toBe("INPUT_READ_FAILED");
    expect(err.message).toContain(file);
    expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain(secret);
    expect(err.cause).toBeUndefined();
  });

  it("names the file and key, not the value, when an auth is not user:password", async () => {
    const file = join(dir, "nocolon.json");
    const value = Buffer.from("justatoken").toString("base64");
    await writeFile(file, JSON.stringify({ auths: { "quay.io": { auth: value } } }));
    const err = await rejection(loadCredentials({ authFile: file, env: {}, home }));
    expect(err.code).toBe("INPUT_READ_FAILED");
    expect(err.message).toContain("quay.io");
    expect(err.message).not.toContain(value);
    expect(err.message).not.toContain("justatoken");
  });
});
