/**
 * How `bundle apply` finds out what the mirror already holds, counted at a
 * proxy in front of the real registry: with many `.sig` tags, one tag listing
 * instead of a HEAD per tag (a first push then asks nothing per artifact), and
 * a HEAD only for the tags the listing shows; with few tags, a HEAD each.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { LIST_TAGS_FROM, runApply, type ApplyOptions } from "../../src/commands/bundle-apply.js";
import { runCreate } from "../../src/commands/bundle-create.js";
import { capture } from "../helpers/capture.js";
import type { SigferryError } from "../../src/errors.js";
import { startFaultProxy, type FaultProxy } from "../world/fault-proxy.js";
import { startWorld, type World } from "../world/index.js";

const RELEASES = LIST_TAGS_FROM + 4;

let world: World;
let proxy: FaultProxy;
let dir: string;
let many: string;
let few: string;
let denyListing = false;
/** When set, the mirror refuses the nth `.sig` manifest PUT from now on (1-based). */
let refusePut: { nth: number; seen: number } | undefined;

async function create(output: string, versions: string[]): Promise<void> {
  await runCreate(
    {
      release: versions,
      arch: ["x86_64"],
      releaseRepo: world.releaseRepo,
      plainHttp: true,
      signatureStore: [world.stores.primary],
      keyring: [world.keys.openpgpTrusted],
      sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
      output,
    },
    capture({ quiet: true }).reporter,
  );
}

beforeAll(async () => {
  world = await startWorld({ releases: RELEASES, mirror: true, cases: false });
  proxy = await startFaultProxy({
    target: world.mirror!.url,
    // Some registries refuse to list tags to a client that may push (a permission of its own).
    respond: (req, res) => {
      if (
        refusePut &&
        req.method === "PUT" &&
        /\/manifests\/sha256-[0-9a-f]{64}\.sig$/.test(req.url)
      ) {
        if (++refusePut.seen === refusePut.nth) {
          res.writeHead(403, { "content-type": "application/json" });
          res.end('{"errors":[{"code":"DENIED","message":"quota exceeded"}]}');
          return true;
        }
        return false;
      }
      if (!denyListing || !req.url.includes("/tags/list")) return false;
      res.writeHead(403, { "content-type": "application/json" });
      res.end('{"errors":[{"code":"DENIED","message":"listing tags is not allowed"}]}');
      return true;
    },
  });
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-e2e-probes-"));
  const versions = world.data.good.map((r) => r.version);
  many = path.join(dir, "many.tar.gz");
  few = path.join(dir, "few.tar.gz");
  await create(many, versions);
  await create(few, versions.slice(0, 3));
}, 240_000);

afterAll(async () => {
  await proxy?.stop();
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

let from = 0;
beforeEach(() => {
  from = proxy.log.length;
});

/** The requests since the test began, as "METHOD kind". */
function requests(): string[] {
  return proxy.log.slice(from).map((e) => {
    const kind = e.url.includes("/tags/list")
      ? "tags"
      : /\/manifests\/sha256-[0-9a-f]{64}\.sig$/.test(e.url)
        ? "sig-tag"
        : /\/manifests\/sha256:/.test(e.url)
          ? "by-digest"
          : /\/blobs\//.test(e.url)
            ? "blob"
            : "other";
    return `${e.method} ${kind}`;
  });
}

const count = (list: string[], what: string): number => list.filter((r) => r === what).length;

async function apply(
  archive: string,
  repo: string,
  extra: Partial<ApplyOptions> = {},
): Promise<{ actions: string[] }> {
  const options: ApplyOptions = {
    ...extra,
    to: `${proxy.host}/${repo}`,
    plainHttp: true,
    skipCluster: true,
    manifestsDir: path.join(dir, `manifests-${repo.replace(/\W/g, "-")}-${from}`),
    keyring: [world.keys.openpgpTrusted],
    sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
    quiet: true,
  };
  const out = await runApply(archive, options, capture({ quiet: true }).reporter);
  return { actions: out.registry!.artifacts.map((a) => a.action) };
}

describe(`bundle apply with ${RELEASES} .sig tags`, () => {
  it("pushes into an empty repository after one tag listing, with no HEAD per tag", async () => {
    const { actions } = await apply(many, "probes/fresh");
    expect(actions).toEqual(Array(RELEASES).fill("pushed"));
    const r = requests();
    expect(count(r, "GET tags")).toBe(1);
    expect(count(r, "HEAD sig-tag")).toBe(0);
    expect(count(r, "PUT sig-tag")).toBe(RELEASES);
  });

  it("run again: the listing shows every tag, each gets one HEAD, nothing is pushed", async () => {
    const { actions } = await apply(many, "probes/fresh");
    expect(actions).toEqual(Array(RELEASES).fill("unchanged"));
    const r = requests();
    expect(count(r, "GET tags")).toBe(1);
    expect(count(r, "HEAD sig-tag")).toBe(RELEASES);
    expect(r.filter((x) => x.startsWith("PUT ") || x.startsWith("POST "))).toEqual([]);
  });

  it("with part of them present: HEADs only those, pushes only the rest", async () => {
    await apply(few, "probes/partial");
    from = proxy.log.length;
    const { actions } = await apply(many, "probes/partial");
    expect(count(actions, "unchanged")).toBe(3);
    expect(count(actions, "pushed")).toBe(RELEASES - 3);
    const r = requests();
    expect(count(r, "GET tags")).toBe(1);
    expect(count(r, "HEAD sig-tag")).toBe(3);
    expect(count(r, "PUT sig-tag")).toBe(RELEASES - 3);
  });
});

describe("bundle apply where the registry refuses to list tags", () => {
  it("falls back to a HEAD per tag and pushes everything", async () => {
    denyListing = true;
    try {
      const { actions } = await apply(many, "probes/denied");
      expect(actions).toEqual(Array(RELEASES).fill("pushed"));
      const r = requests();
      expect(count(r, "GET tags")).toBe(1);
      expect(count(r, "HEAD sig-tag")).toBe(RELEASES);
    } finally {
      denyListing = false;
    }
  });
});

describe("bundle apply with few .sig tags", () => {
  it("asks with a HEAD per tag and does not list the repository", async () => {
    const { actions } = await apply(few, "probes/few");
    expect(actions).toEqual(["pushed", "pushed", "pushed"]);
    const r = requests();
    expect(count(r, "GET tags")).toBe(0);
    expect(count(r, "HEAD sig-tag")).toBe(3);
  });
});

describe("bundle apply when a push fails", () => {
  it("starts no further artifact, lets those under way finish, and reports the refusal", async () => {
    refusePut = { nth: 3, seen: 0 };
    try {
      const err = await apply(many, "probes/refused", { concurrency: 2 }).then(
        () => undefined,
        (e: unknown) => e as SigferryError,
      );
      expect(err?.message).toMatch(
        /put manifest .*probes\/refused:sha256-[0-9a-f]{64}\.sig: access denied \(403\)/,
      );
      // --json readers get the tag without parsing the message.
      expect(err?.details).toMatchObject({
        repository: "probes/refused",
        reference: expect.stringMatching(/^sha256-[0-9a-f]{64}\.sig$/),
        status: 403,
      });
    } finally {
      refusePut = undefined;
    }
    const r = requests();
    // Two artifacts under way at most: the refused third, and at most one beside it.
    expect(count(r, "PUT sig-tag")).toBeGreaterThanOrEqual(3);
    expect(count(r, "PUT sig-tag")).toBeLessThanOrEqual(4);
    expect(count(r, "PUT sig-tag")).toBeLessThan(RELEASES);
  });
});
