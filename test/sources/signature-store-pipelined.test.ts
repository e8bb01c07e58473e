/**
 * SignatureStoreClient#listPipelined: the speculative signature-1 + signature-2
 * fetch that `bundle create` uses must return exactly what `list` returns (the
 * CVO's "stop at the first 404"), whatever the store holds past a gap.
 */
import { createHash } from "node:crypto";
import pLimit from "p-limit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Digest } from "../../src/core/digest.js";
import { SignatureStoreClient } from "../../src/sources/signature-store.js";
import { startStaticServer, type StaticServer } from "../world/http-static.js";

const digestOf = (name: string): Digest =>
  `sha256:${createHash("sha256").update(name).digest("hex")}`;
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Store layouts by name: which slots hold a file. */
const LAYOUTS: Record<string, number[]> = {
  one: [1],
  two: [1, 2],
  three: [1, 2, 3],
  none: [],
  gapBeforeTwo: [2],
  gapBeforeThree: [1, 3],
};

let server: StaticServer;
let store: string;
let client: SignatureStoreClient;

beforeAll(async () => {
  const primary = new Map<string, Uint8Array>();
  for (const [name, slots] of Object.entries(LAYOUTS)) {
    for (const n of slots) {
      primary.set(`sha256=${digestOf(name).slice(7)}/signature-${n}`, bytes(`${name}-${n}`));
    }
  }
  server = await startStaticServer({ primary, graphs: {} });
  store = server.stores.primary;
  client = new SignatureStoreClient();
});
afterAll(async () => {
  await client?.close();
  await server?.stop();
});

const run = <T>(fn: () => Promise<T>): Promise<T> => fn();

describe("listPipelined", () => {
  for (const name of Object.keys(LAYOUTS)) {
    it(`returns what list returns for a store holding slots [${LAYOUTS[name]!.join(", ")}]`, async () => {
      const digest = digestOf(name);
      const plain = await client.list(store, digest);
      for (const speculative of [false, true]) {
        const piped = await client.listPipelined(store, digest, { run, speculative });
        expect(piped).toEqual(plain);
      }
    });
  }

  it("never carries signature-3 when signature-2 was a 404, even though the store has it", async () => {
    const listing = await client.listPipelined(store, digestOf("gapBeforeThree"), {
      run,
      speculative: true,
    });
    expect(listing.signatures.map((s) => s.index)).toEqual([1]);
    expect(listing.tried.map((u) => u.slice(-11))).toEqual(["signature-1", "signature-2"]);
  });

  it("when signature-1 is a 404 it keeps nothing, and reports only signature-1 as tried", async () => {
    server.resetCounts();
    const listing = await client.listPipelined(store, digestOf("gapBeforeTwo"), {
      run,
      speculative: true,
    });
    expect(listing.signatures).toEqual([]);
    expect(listing.tried).toHaveLength(1);
    // The speculative signature-2 was asked for (that is the wasted request) but not kept.
    expect(server.count("")).toBe(2);
  });

  it("asks for signature-1 and signature-2 together, then one at a time", async () => {
    server.resetCounts();
    await client.listPipelined(store, digestOf("three"), { run, speculative: true });
    // 1 and 2 at once, then 3, then 4 (the 404): four requests, three waits.
    expect(server.count("")).toBe(4);
  });

  it("sends every request through run, so a limiter bounds the requests in flight", async () => {
    const limit = pLimit(3);
    let inFlight = 0;
    let peak = 0;
    const limited = <T>(fn: () => Promise<T>): Promise<T> =>
      limit(async () => {
        peak = Math.max(peak, ++inFlight);
        try {
          return await fn();
        } finally {
          inFlight--;
        }
      });
    const names = Object.keys(LAYOUTS);
    const listings = await Promise.all(
      names.map((n) =>
        client.listPipelined(store, digestOf(n), { run: limited, speculative: true }),
      ),
    );
    expect(peak).toBe(3);
    // Slots up to the first 404 only.
    const kept: Record<string, number> = {
      one: 1,
      two: 2,
      three: 3,
      none: 0,
      gapBeforeTwo: 0,
      gapBeforeThree: 1,
    };
    expect(listings.map((l) => l.signatures.length)).toEqual(names.map((n) => kept[n]));
  });
});
