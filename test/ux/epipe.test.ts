import { describe, expect, it } from "vitest";
import { spawnCli } from "../helpers/cli.js";

describe("a reader that stops early (sigferry … | head)", () => {
  it("is not an error: the CLI stops quietly with its exit code, no stack trace", async () => {
    // The read end is closed before the CLI has written a byte (it is still starting), so
    // its first write to stdout fails with EPIPE, as behind `| head` once head has quit.
    const { child, done } = spawnCli(["--help"]);
    child.stdout!.destroy();
    const r = await done;
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/EPIPE|Error|\n\s+at /);
  });

  it("keeps a failing command's exit code", async () => {
    const args = ["bundle", "inspect", "/no/such/archive.tar.gz", "--json"];
    const read = await spawnCli(args).done;
    expect(read.code).not.toBe(0);
    const { child, done } = spawnCli(args);
    child.stdout!.destroy();
    const r = await done;
    expect(r.signal).toBeNull();
    expect(r.code).toBe(read.code);
    expect(r.stderr).not.toMatch(/EPIPE|\n\s+at /);
  });
});
