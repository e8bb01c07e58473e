import { spawnSync } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, real } from "../helpers/paths.js";

const dist = (m: string): string =>
  JSON.stringify(pathToFileURL(path.join(REPO_ROOT, "dist", m)).href);

/**
 * Loads the built CLI and command modules (dist/ comes from the vitest global
 * setup) in a fresh node, reports which of openpgp.js and yaml are loaded, runs
 * `then`, and reports again. openpgp.js is ESM, so a module-loader hook sees
 * it; yaml is CommonJS, so the require cache does.
 */
function libraries(then: string): { before: string[]; after: string[] } {
  const hooks = `data:text/javascript,${encodeURIComponent(
    `export async function load(url, context, next) {
       if (url.includes("/node_modules/openpgp/")) console.error("openpgp loaded");
       return next(url, context);
     }`,
  )}`;
  const script = [
    `import { register, createRequire } from "node:module";`,
    `register(${JSON.stringify(hooks)});`,
    `const report = (when) => {`,
    `  const cjs = Object.keys(createRequire(import.meta.url).cache);`,
    `  console.error(when + (cjs.some((p) => p.includes("/node_modules/yaml/")) ? " yaml" : ""));`,
    `};`,
    ...["cli.js", "commands/bundle-create.js", "commands/bundle-apply.js"].map(
      (m) => `await import(${dist(m)});`,
    ),
    `report("before");`,
    then,
    `report("after");`,
  ].join("\n");
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: REPO_ROOT,
    encoding: "utf8",
  });
  expect(r.status, r.stderr).toBe(0);
  const lines = r.stderr.split("\n").filter(Boolean);
  const split = lines.findIndex((l) => l.startsWith("before"));
  const at = (from: number, to: number): string[] => {
    const found = new Set<string>();
    for (const l of lines.slice(from, to)) {
      if (l === "openpgp loaded") found.add("openpgp");
      if (l.endsWith(" yaml")) found.add("yaml");
    }
    return [...found].sort();
  };
  return { before: at(0, split + 1), after: at(0, lines.length) };
}

describe("libraries loaded on first use, not at start", () => {
  it("openpgp.js: loaded by the first OpenPGP key read, not by loading the commands", () => {
    const key = JSON.stringify(real("keys", "redhat-release-key-2.asc"));
    const seen = libraries(
      `const { loadOpenPgpKeys } = await import(${dist("verify/openpgp.js")});` +
        `const keys = await loadOpenPgpKeys(await (await import("node:fs/promises")).readFile(${key}), "k");` +
        `if (keys.length !== 1) throw new Error("no key");`,
    );
    expect(seen.before).toEqual([]);
    expect(seen.after).toEqual(["openpgp"]);
  });

  it("yaml: loaded by the first YAML that sigferry cannot write or check directly", () => {
    const seen = libraries(
      `const { configMapToYaml } = await import(${dist("core/manifests.js")});` +
        `configMapToYaml({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" }, data: { a: "yes" } });`,
    );
    expect(seen.before).toEqual([]);
    expect(seen.after).toEqual(["yaml"]);
  });
});
