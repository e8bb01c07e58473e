/**
 * V8 settings for a command-line run of sigferry: how the heap grows, and how
 * WebAssembly is compiled.
 *
 * sigferry keeps little alive: at 2000 releases a heap snapshot in the middle
 * of `bundle apply` holds about 34 MiB. Left to its defaults, V8 sizes the
 * heap for long-running servers instead, and the process peaks far above that
 * (measured in bench/, docs/benchmarks.md):
 *   - the young generation grows from 1 MiB to 16 MiB per semi-space as soon
 *     as objects survive scavenges (promises waiting on the network, results
 *     being collected), which puts 32 MiB or more of mostly empty pages in the
 *     resident set;
 *   - after a full collection the old generation may grow up to 4× its live
 *     size before the next one when the collector is cheap, so a 30 MiB live
 *     set runs up to 120 MiB of garbage before it is collected.
 *
 * Both factors are read by V8 each time it grows a space, so they can still be
 * set once the process is running (v8.setFlagsFromString); the sizes of the
 * spaces cannot (`--max-semi-space-size` is read only when the heap is made).
 * A node flag of the user's own wins: on node's command line (NODE_OPTIONS
 * refuses these V8 flags, but is looked at too).
 *
 * The cost is more frequent, smaller collections: at 2000 releases about a
 * thousand scavenges of 1 MiB instead of a few dozen of 16 MiB, a few percent
 * of CPU time for a command that mostly waits on the network.
 */
import { setFlagsFromString } from "node:v8";

/** The V8 settings applied by `tuneHeap`, with the flag name each overrides. */
export const V8_FACTORS: readonly { flag: string; value: number }[] = [
  // Keep the young generation at its initial size (1 MiB per semi-space on 64-bit).
  { flag: "--semi-space-growth-factor", value: 1 },
  // After a full collection, grow the old generation's limit by 50% of the live size at most.
  { flag: "--heap-growing-percent", value: 50 },
];

/**
 * Boolean V8 settings. `--liftoff-only`: compile WebAssembly with the baseline
 * compiler only. undici parses HTTP/1.1 with llhttp compiled to WebAssembly,
 * and V8's optimizing compiler takes about 28 MiB for a moment to compile that
 * parser, on a background thread shortly after the first response; with
 * --liftoff-only it is compiled once, by the baseline compiler, and parsing
 * the short responses of a registry costs no measurable time more.
 */
export const V8_SWITCHES: readonly string[] = ["--liftoff-only"];

/** Whether the user set `flag` themselves (node's command line or NODE_OPTIONS). */
function setByUser(flag: string, execArgv: readonly string[], nodeOptions: string): boolean {
  // V8 accepts both spellings of a flag: --semi-space-growth-factor and --semi_space_growth_factor.
  const names = [flag, flag.replace(/(?<=\w)-/g, "_")];
  const given = [...execArgv, ...nodeOptions.split(/\s+/)];
  return given.some((arg) => names.some((n) => arg === n || arg.startsWith(`${n}=`)));
}

/**
 * Applies V8_FACTORS and V8_SWITCHES to this process, except those the user
 * set. Call it once, first thing, before the heap has grown and before any
 * WebAssembly is compiled. Returns the flags it applied.
 */
export function applyV8Settings(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? "",
): string[] {
  const applied: string[] = [];
  for (const { flag, value } of V8_FACTORS) {
    if (setByUser(flag, execArgv, nodeOptions)) continue;
    const setting = `${flag}=${value}`;
    setFlagsFromString(setting);
    applied.push(setting);
  }
  for (const flag of V8_SWITCHES) {
    const off = flag.replace(/^--/, "--no-");
    if (setByUser(flag, execArgv, nodeOptions) || setByUser(off, execArgv, nodeOptions)) continue;
    setFlagsFromString(flag);
    applied.push(flag);
  }
  return applied;
}
