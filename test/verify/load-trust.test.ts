/**
 * Trust on the connected side: without key files, `bundle create` downloads Red Hat's
 * published keys and accepts them only when they match the pinned fingerprints. The
 * downloads are answered by an undici MockAgent serving the real key files in place.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { MockAgent } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import {
  REDHAT_OPENPGP_KEY_URL,
  REDHAT_RELEASE_KEY_2,
  REDHAT_SIGSTORE_KEY_ID,
  REDHAT_SIGSTORE_KEY_URL,
} from "../../src/core/trust.js";
import { isSigferryError } from "../../src/errors.js";
import { loadTrust } from "../../src/verify/load-trust.js";
import { real } from "../helpers/paths.js";

const releaseKey2 = readFileSync(real("keys/redhat-release-key-2.asc"), "utf8");
const betaKey2 = readFileSync(real("keys/redhat-beta-key-2.asc"), "utf8");
const ciKey4 = readFileSync(real("keys/openshift-ci-key-4.asc"), "utf8");
const sigstoreKey = readFileSync(real("keys/redhat-release-sigstore-key.pem"), "utf8");
const rekorKey = readFileSync(real("keys/sigstore-rekor-production.pub"), "utf8");

function serving(openpgpBody: string, sigstoreBody: string): MockAgent {
  const agent = new MockAgent();
  agent.disableNetConnect();
  for (const [url, body] of [
    [REDHAT_OPENPGP_KEY_URL, openpgpBody],
    [REDHAT_SIGSTORE_KEY_URL, sigstoreBody],
  ] as const) {
    const u = new URL(url);
    agent.get(u.origin).intercept({ path: u.pathname, method: "GET" }).reply(200, body);
  }
  return agent;
}

let tmp: string | undefined;
afterEach(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
  tmp = undefined;
});

describe("loadTrust with Red Hat's published keys", () => {
  it("accepts the published files when they hold the pinned keys, taking only pinned keys from a file with several", async () => {
    // The published file may hold more than one key (and gpg's listing lines): only pins are taken.
    const published = `pub   4096R/FD431D51 2009-10-22\n${releaseKey2}\n${ciKey4}\n${betaKey2}`;
    const trust = await loadTrust({
      fetchPublished: true,
      dispatcher: serving(published, sigstoreKey),
    });
    expect(trust.openpgp.map((k) => k.fingerprint).sort()).toEqual(
      ["B08B659EE86AF623BC90E8DB938A80CAF21541EB", REDHAT_RELEASE_KEY_2].sort(),
    );
    expect(trust.sigstore.map((k) => k.id)).toEqual([REDHAT_SIGSTORE_KEY_ID]);
    expect(trust.origin.openpgp).toContain("(pinned)");
  });

  it("refuses an OpenPGP key file that holds no pinned key with KEY_PIN_MISMATCH", async () => {
    const err = await loadTrust({
      fetchPublished: true,
      dispatcher: serving(ciKey4, sigstoreKey),
    }).catch((e: unknown) => e);
    expect(isSigferryError(err, "KEY_PIN_MISMATCH")).toBe(true);
  });

  it("refuses a sigstore key that is not the pinned one with KEY_PIN_MISMATCH naming the URL", async () => {
    const err = await loadTrust({
      fetchPublished: true,
      dispatcher: serving(releaseKey2, rekorKey),
    }).catch((e: unknown) => e);
    expect(isSigferryError(err, "KEY_PIN_MISMATCH")).toBe(true);
    expect((err as Error).message).toContain(REDHAT_SIGSTORE_KEY_URL);
  });

  it("tries a download again after a 503 or a reset connection, as every other request", async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const pgp = new URL(REDHAT_OPENPGP_KEY_URL);
    const sig = new URL(REDHAT_SIGSTORE_KEY_URL);
    agent
      .get(pgp.origin)
      .intercept({ path: pgp.pathname, method: "GET" })
      .reply(503, "busy", { headers: { "retry-after": "0" } });
    agent.get(pgp.origin).intercept({ path: pgp.pathname, method: "GET" }).reply(200, releaseKey2);
    agent
      .get(sig.origin)
      .intercept({ path: sig.pathname, method: "GET" })
      .replyWithError(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }));
    agent.get(sig.origin).intercept({ path: sig.pathname, method: "GET" }).reply(200, sigstoreKey);
    const trust = await loadTrust({ fetchPublished: true, dispatcher: agent });
    expect(trust.openpgp.map((k) => k.fingerprint)).toEqual([REDHAT_RELEASE_KEY_2]);
    expect(trust.sigstore.map((k) => k.id)).toEqual([REDHAT_SIGSTORE_KEY_ID]);
    agent.assertNoPendingInterceptors();
  });

  it("does not try a 404 again: HTTP_STATUS naming the URL", async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const pgp = new URL(REDHAT_OPENPGP_KEY_URL);
    agent.get(pgp.origin).intercept({ path: pgp.pathname, method: "GET" }).reply(404, "gone");
    // A second answer that would succeed: it must stay unused.
    agent.get(pgp.origin).intercept({ path: pgp.pathname, method: "GET" }).reply(200, releaseKey2);
    const err = await loadTrust({ fetchPublished: true, dispatcher: agent }).catch(
      (e: unknown) => e,
    );
    expect(isSigferryError(err, "HTTP_STATUS")).toBe(true);
    expect((err as Error).message).toBe(`${REDHAT_OPENPGP_KEY_URL} answered 404`);
    expect(agent.pendingInterceptors()).toHaveLength(1);
  });

  it("trusts exactly the key files given, fetching nothing", async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "sigferry-trust-"));
    const file = path.join(tmp, "ci.asc");
    await writeFile(file, ciKey4);
    const agent = new MockAgent();
    agent.disableNetConnect();
    const trust = await loadTrust({
      keyring: [file],
      sigstoreKey: [real("keys/redhat-release-sigstore-key.pem")],
      fetchPublished: true,
      dispatcher: agent,
    });
    expect(trust.openpgp.map((k) => k.fingerprint)).toEqual([
      "6A9588F07F2D3AE7973AD2A9193E53CCD2E2F7A4",
    ]);
    expect(trust.sigstore.map((k) => k.id)).toEqual([REDHAT_SIGSTORE_KEY_ID]);
  });
});
