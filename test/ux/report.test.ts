/**
 * REPORT.md, the change-ticket evidence every archive carries, and
 * `bundle inspect --format markdown`, which prints the same summary regenerated
 * from the index and marked UNVERIFIED.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BundleIndex } from "../../src/core/bundle-index.js";
import { parseChecksums } from "../../src/core/checksums.js";
import { renderReport } from "../../src/core/report.js";
import { runCli } from "../helpers/cli.js";
import { startWorld, type World } from "../world/index.js";
import { createArchive, fileSha256, readBundle } from "./world-args.js";

let world: World;
let dir: string;
let archive: string;
let index: BundleIndex;
let members: ReadonlyMap<string, Uint8Array>;
let report: string;

beforeAll(async () => {
  world = await startWorld();
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-ux-report-"));
  archive = path.join(dir, "sigs.tar.gz");
  // A good release and one whose store also serves a garbage signature-2 (rejected, with a reason).
  await createArchive(
    world,
    archive,
    [world.data.good[0]!.version, world.data.cases.garbageSecondSignature.version],
    ["x86_64", "multi"],
  );
  ({ index, members } = await readBundle(archive));
  report = new TextDecoder().decode(members.get("REPORT.md"));
}, 240_000);

afterAll(async () => {
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every image digest the index names: release digests and per-arch digests. */
function allDigests(i: BundleIndex): string[] {
  return i.releases.flatMap((r) => [r.digest, ...(r.manifests ?? []).map((m) => m.digest)]);
}

describe("REPORT.md in every archive", () => {
  it("is listed in checksums.sha256 and equals the report regenerated from the archive's index", () => {
    const listed = parseChecksums(new TextDecoder().decode(members.get("checksums.sha256")));
    expect([...listed.keys()]).toContain("REPORT.md");
    expect(report).toBe(renderReport(index));
  });

  it("names every release with version, arch and digest, and every per-arch digest", () => {
    expect(index.releases.length).toBe(4);
    for (const r of index.releases) {
      expect(report).toMatch(
        new RegExp(`\\| ${r.version!.replace(/\./g, "\\.")} \\| ${r.arch} \\| \`${r.digest}\``),
      );
    }
    for (const d of allDigests(index)) expect(report).toContain(d);
  });

  it("names every signature with its signer and result, and every rejected one with its reason", () => {
    for (const s of index.openpgp) {
      expect(report).toContain(`\`${s.path}\``);
      expect(report).toContain(s.signer);
    }
    for (const a of index.sigstore) for (const l of a.layers) expect(report).toContain(l.signer);
    expect(index.rejected.length).toBeGreaterThan(0);
    for (const r of index.rejected) {
      expect(report).toContain(r.code);
      expect(report).toContain(r.source);
    }
    expect(report).toContain("not a valid OpenPGP signed message");
  });

  it("records the selection, the checksum instructions and the commands for the other side", () => {
    expect(report).toContain("## Selection");
    expect(report).toContain(
      `| releases | ${world.data.good[0]!.version}, ${world.data.cases.garbageSecondSignature.version} |`,
    );
    expect(report).toContain("| arches | x86_64, multi |");
    expect(report).toContain("sha256sum -c <archive>.sha256");
    expect(report).toContain("cannot contain the archive's own SHA-256");
    expect(report).toMatch(/sigferry bundle verify <archive> --keyring/);
    expect(report).toMatch(/sigferry bundle apply <archive> --to /);
    expect(report).toMatch(/sigferry check --to .* --bundle <archive>/);
  });

  it("is the same bytes for the same inputs (SOURCE_DATE_EPOCH)", async () => {
    const again = path.join(dir, "again.tar.gz");
    await createArchive(
      world,
      again,
      [world.data.good[0]!.version, world.data.cases.garbageSecondSignature.version],
      ["x86_64", "multi"],
    );
    expect(await fileSha256(again)).toBe(await fileSha256(archive));
  });
});

describe("bundle inspect --format markdown", () => {
  it("prints the same summary, marked UNVERIFIED, with the archive's own hash, and every release digest", async () => {
    const run = await runCli(["bundle", "inspect", archive, "--format", "markdown"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("**UNVERIFIED.**");
    expect(run.stdout).toContain(await fileSha256(archive));
    for (const d of allDigests(index)) expect(run.stdout).toContain(d);
    // Apart from the UNVERIFIED banner and the archive line, it is REPORT.md.
    const banner = run.stdout.split("\n").filter((l) => !report.split("\n").includes(l));
    expect(banner.filter((l) => l !== "")).toHaveLength(2);
  });

  it("--json and --format markdown together are a usage error", async () => {
    const run = await runCli(["bundle", "inspect", archive, "--format", "markdown", "--json"]);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { code: "USAGE" } });
  });

  it("text output says whether REPORT.md matches the index", async () => {
    const run = await runCli(["bundle", "inspect", archive]);
    expect(run.stdout).toContain("report    REPORT.md matches the index");
  });
});

describe("renderReport", () => {
  it("neutralises Markdown and HTML in index fields that crossed the gap", async () => {
    const hostile: BundleIndex = JSON.parse(JSON.stringify(index)) as BundleIndex;
    hostile.keys.openpgp[0]!.userIds = [
      "<img src=x onerror=alert(1)> | [click](http://evil) `x`\nnew row",
    ];
    hostile.rejected[0]!.reason = "| fake | row |\n## Heading";
    const md = renderReport(hostile);
    expect(md).not.toMatch(/(?<!\\)<img/);
    expect(md).toContain("\\<img");
    expect(md).not.toContain("[click](");
    expect(md).not.toContain("\n## Heading");
    // Rows keep their column count: every pipe from the data is escaped.
    for (const line of md.split("\n").filter((l) => l.startsWith("| openpgp |"))) {
      expect(line.split(/(?<!\\)\|/).length).toBe(8);
    }
  });

  it("says INCOMPLETE and lists what is missing for a --keep-going bundle", async () => {
    const incomplete = path.join(dir, "incomplete.tar");
    const run = await runCli([
      "bundle",
      "create",
      "--release",
      world.data.cases.noSignature.version,
      "--release-repo",
      world.releaseRepo,
      "--plain-http",
      "--signature-store",
      world.stores.primary,
      "--keyring",
      world.keys.openpgpTrusted,
      "--sigstore-key",
      world.keys.sigstoreRsa,
      "--sigstore-key",
      world.keys.sigstoreEcdsa,
      "--keep-going",
      "-q",
      "-o",
      incomplete,
    ]);
    expect(run.code).toBe(4);
    const { members: m } = await readBundle(incomplete);
    const md = new TextDecoder().decode(m.get("REPORT.md"));
    expect(md).toContain("**INCOMPLETE:**");
    expect(md).toContain("## Missing signatures");
    expect(md).toContain("SIGNATURE_MISSING");
  });

  it("for Red Hat's pinned keys, the commands for the other side need no key flags", () => {
    const pinned: BundleIndex = JSON.parse(JSON.stringify(index)) as BundleIndex;
    pinned.keys = {
      openpgp: [
        {
          fingerprint: "567E347AD0044ADE55BA8A5F199E2F91FD431D51",
          path: "keys/openpgp/x.asc",
          userIds: ["Red Hat, Inc. (release key 2) <security@redhat.com>"],
        },
      ],
      sigstore: [
        {
          id: "ba9d26350d78893a20f337e2153a113108bfcf064085afaee60d446e63405576",
          path: "keys/sigstore/x.pem",
          algorithm: "rsa-4096",
        },
      ],
    };
    const md = renderReport(pinned);
    expect(md).toContain("sigferry bundle verify <archive>\n");
    expect(md).toContain("yes (Red Hat)");
  });

  it("the archive's documentation lists REPORT.md as a member", async () => {
    const spec = await readFile(
      path.join(import.meta.dirname, "../../docs/bundle-format.md"),
      "utf8",
    );
    expect(spec).toMatch(/\| `REPORT\.md` \|/);
  });
});
