import { describe, expect, it } from "vitest";
import { loopTurns } from "../../src/verify/bundle.js";

const busy = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe("loopTurns", () => {
  it("costs nothing before the slice has run", () => {
    const turn = loopTurns(50);
    expect(turn()).toBeUndefined();
  });

  it("after a slice of work, lets the event loop run what was waiting (an I/O answer, an immediate)", async () => {
    const turn = loopTurns(5);
    let ran = false;
    setImmediate(() => {
      ran = true;
    });
    busy(8);
    const p = turn();
    expect(p).toBeInstanceOf(Promise);
    await p;
    expect(ran).toBe(true);
    // The slice starts again after the turn.
    expect(turn()).toBeUndefined();
  });
});
