import { describe, expect, it } from "vitest";
import { forEachWindowed } from "../../src/core/windowed.js";

/** A call that settles when the test says so. */
interface Pending {
  item: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Runs forEachWindowed over 0..count-1 with calls the test settles by hand. */
function harness(count: number, width: number, options = {}) {
  const pending: Pending[] = [];
  const started: number[] = [];
  const settled: number[] = [];
  let pulled = 0;
  let active = 0;
  let maxActive = 0;
  let closed = false;
  function* items(): Generator<number> {
    try {
      for (let i = 0; i < count; i++) {
        pulled++;
        yield i;
      }
    } finally {
      closed = true;
    }
  }
  const run = forEachWindowed(
    items(),
    width,
    (item, index) => {
      expect(index).toBe(item);
      started.push(item);
      active++;
      maxActive = Math.max(maxActive, active);
      return new Promise<void>((resolve, reject) => {
        pending.push({
          item,
          resolve: () => {
            active--;
            settled.push(item);
            resolve();
          },
          reject: (err: Error) => {
            active--;
            settled.push(item);
            reject(err);
          },
        });
      });
    },
    options,
  );
  let outcome: "pending" | "resolved" | { error: unknown } = "pending";
  run.then(
    () => (outcome = "resolved"),
    (error: unknown) => (outcome = { error }),
  );
  const turn = () => new Promise((r) => setImmediate(r));
  return {
    pending,
    started,
    settled,
    turn,
    get pulled() {
      return pulled;
    },
    get maxActive() {
      return maxActive;
    },
    get closed() {
      return closed;
    },
    get outcome() {
      return outcome;
    },
  };
}

describe("forEachWindowed", () => {
  it("keeps at most `width` calls under way and reads items only as places free", async () => {
    const h = harness(10, 3);
    expect(h.started).toEqual([0, 1, 2]);
    expect(h.pulled).toBe(3);
    h.pending[1]!.resolve();
    await h.turn();
    expect(h.started).toEqual([0, 1, 2, 3]);
    expect(h.pulled).toBe(4);
    // Settle everything, oldest first, one turn at a time.
    for (let i = 0; h.outcome === "pending" && i < 100; i++) {
      const next = h.pending.find((p) => !h.settled.includes(p.item));
      next?.resolve();
      await h.turn();
    }
    expect(h.outcome).toBe("resolved");
    expect(h.started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(h.maxActive).toBe(3);
  });

  it("resolves at once for no items", async () => {
    const h = harness(0, 4);
    await h.turn();
    expect(h.outcome).toBe("resolved");
    expect(h.started).toEqual([]);
  });

  it("on the first failure starts nothing more and rejects only after the calls under way settle", async () => {
    const h = harness(10, 3);
    const boom = new Error("boom");
    h.pending[0]!.reject(boom);
    await h.turn();
    expect(h.started).toEqual([0, 1, 2]);
    expect(h.outcome).toBe("pending");
    h.pending[2]!.reject(new Error("second"));
    await h.turn();
    expect(h.outcome).toBe("pending");
    h.pending[1]!.resolve();
    await h.turn();
    expect(h.outcome).toEqual({ error: boom });
    expect(h.started).toEqual([0, 1, 2]);
    expect(h.closed).toBe(true);
  });

  it("stops starting items once `stopped` says so, and resolves when those under way settle", async () => {
    let stop = false;
    const h = harness(10, 2, { stopped: () => stop });
    stop = true;
    h.pending[0]!.resolve();
    await h.turn();
    expect(h.started).toEqual([0, 1]);
    expect(h.outcome).toBe("pending");
    h.pending[1]!.resolve();
    await h.turn();
    expect(h.outcome).toBe("resolved");
    expect(h.closed).toBe(true);
  });

  it("treats a call that throws synchronously as a failure", async () => {
    const calls: number[] = [];
    const err = new Error("sync");
    await expect(
      forEachWindowed([1, 2, 3, 4], 3, (n) => {
        calls.push(n);
        if (n === 2) throw err;
        return new Promise<void>((r) => setImmediate(r));
      }),
    ).rejects.toBe(err);
    // Item 1 was under way and settled; nothing started after the throw.
    expect(calls).toEqual([1, 2]);
  });

  it("rejects when the iterable throws, after the calls under way settle", async () => {
    let done = 0;
    function* items(): Generator<number> {
      yield 1;
      throw new Error("source broke");
    }
    await expect(
      forEachWindowed(items(), 4, async () => {
        await new Promise((r) => setImmediate(r));
        done++;
      }),
    ).rejects.toThrow("source broke");
    expect(done).toBe(1);
  });

  it("refuses a width that is not a positive integer", async () => {
    await expect(forEachWindowed([1], 0, () => Promise.resolve())).rejects.toThrow(RangeError);
    await expect(forEachWindowed([1], 1.5, () => Promise.resolve())).rejects.toThrow(RangeError);
  });
});
