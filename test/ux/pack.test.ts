/**
 * The offline install: `npm pack` gives a tarball that installs and runs with
 * no registry at all (runtime dependencies bundled), into an empty project with
 * an empty npm cache and a registry address that refuses every connection.
 *
 * The pack runs with --ignore-scripts: vitest's global setup has just built
 * dist/, and the prepack script (a clean rebuild) would rewrite dist/ under the
 * other test files running in parallel. That prepack builds is checked on the
 * script itself.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/paths.js";

const exec = promisify(execFile);

interface PackageJson {
  version: string;
  dependencies: Record<string, string>;
  bundleDependencies?: string[];
  files: string[];
  scripts: Record<string, string>;
  bin: Record<string, string>;
}

let tmp: string;
let pkg: PackageJson;

/** npm with no user or global configuration, no registry that answers, and a cache of its own. */
function npm(args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: path.join(tmp, "home"),
    npm_config_userconfig: path.join(tmp, "empty-npmrc"),
    npm_config_globalconfig: path.join(tmp, "empty-global-npmrc"),
    npm_config_cache: path.join(tmp, "cache"),
    // Port 9 (discard) on loopback: any registry request fails at once instead of reaching out.
    npm_config_registry: "http://127.0.0.1:9/",
    npm_config_update_notifier: "false",
  };
  return exec("npm", args, { cwd, env, maxBuffer: 64 * 1024 * 1024, timeout: 90_000 });
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "sigferry-ux-pack-"));
  await mkdir(path.join(tmp, "home"));
  await mkdir(path.join(tmp, "cache"));
  await writeFile(path.join(tmp, "empty-npmrc"), "");
  await writeFile(path.join(tmp, "empty-global-npmrc"), "");
  pkg = JSON.parse(await readFile(path.join(REPO_ROOT, "package.json"), "utf8")) as PackageJson;
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("npm pack and an offline install", () => {
  it("package.json bundles every runtime dependency, and prepack builds dist/ from scratch", () => {
    expect([...(pkg.bundleDependencies ?? [])].sort()).toEqual(
      Object.keys(pkg.dependencies).sort(),
    );
    expect(pkg.scripts.prepack).toContain("npm run build");
    expect(pkg.scripts.prepack).toContain("rmSync('dist'");
    expect(pkg.files).toEqual(expect.arrayContaining(["bin/", "dist/"]));
  });

  it("installs from the tarball with no registry and an empty cache, and the installed sigferry runs", async () => {
    const packed = await npm(
      ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp],
      REPO_ROOT,
    );
    const [info] = JSON.parse(packed.stdout) as {
      filename: string;
      files: { path: string }[];
      bundled: string[];
    }[];
    const files = info!.files.map((f) => f.path);
    expect(files).toContain("dist/cli.js");
    expect(files).toContain("bin/sigferry.js");
    expect(files).toContain("docs/schema/sigferry-output.schema.json");
    expect(files.some((f) => f.startsWith("src/") || f.startsWith("test/"))).toBe(false);
    for (const dep of Object.keys(pkg.dependencies)) expect(info!.bundled).toContain(dep);

    const project = path.join(tmp, "project");
    await mkdir(project);
    await writeFile(
      path.join(project, "package.json"),
      `${JSON.stringify({ name: "offline-install", version: "1.0.0", private: true })}\n`,
    );
    await npm(
      [
        "install",
        "--offline",
        "--no-audit",
        "--no-fund",
        "--cache",
        path.join(tmp, "cache"),
        path.join(tmp, info!.filename),
      ],
      project,
    );
    // Every dependency resolved from the tarball itself: nothing was fetched (there is no registry).
    const nested = await readdir(path.join(project, "node_modules/sigferry/node_modules"));
    for (const dep of Object.keys(pkg.dependencies)) expect(nested).toContain(dep);

    const bin = path.join(project, "node_modules/.bin/sigferry");
    const version = await exec(bin, ["--version"], { cwd: project });
    expect(version.stdout.trim()).toBe(`sigferry ${pkg.version} (bundle format 1)`);

    // A command that loads the bundled dependencies (commander, openpgp, tar reader) end to end.
    const verify = await exec(bin, ["bundle", "verify", "no-such.tar", "--json"], {
      cwd: project,
    }).catch((err: { code: number; stdout: string }) => err);
    expect((verify as { code?: number }).code).toBe(2);
    expect(JSON.parse(verify.stdout)).toMatchObject({
      command: "bundle verify",
      error: { code: "INPUT_READ_FAILED" },
    });
    // About 10 s alone; the headroom is for a loaded machine running the other suites beside it.
  }, 120_000);
});
