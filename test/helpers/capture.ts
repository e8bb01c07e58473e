/** A Reporter whose stdout and stderr are captured in memory, for in-process command tests. */
import { Writable } from "node:stream";
import { Reporter, type OutputOptions } from "../../src/commands/output.js";

export interface Captured {
  reporter: Reporter;
  stdout: () => string;
  stderr: () => string;
}

function sink(chunks: string[]): Writable & { isTTY?: boolean } {
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
}

/** Creates a reporter writing into strings. */
export function capture(options: OutputOptions = {}): Captured {
  const out: string[] = [];
  const err: string[] = [];
  const reporter = new Reporter(options, { stdout: sink(out), stderr: sink(err) });
  return { reporter, stdout: () => out.join(""), stderr: () => err.join("") };
}
