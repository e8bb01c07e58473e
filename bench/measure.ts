/**
 * Runs one command under GNU time (`/usr/bin/time -v`) and returns its wall
 * time, CPU time and peak RSS, plus what it printed. GNU time's numbers cover
 * the process and every descendant it waited for (wait4 rusage), so a shell
 * script's figures include its curl and skopeo children; peak RSS is that of
 * the largest single process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { access, constants, readFile, rm } from "node:fs/promises";

/** Where GNU time lives (Debian package `time`). */
export const GNU_TIME = "/usr/bin/time";

/** Commands running under measure(), so an interrupted bench can end them. */
const children = new Set<ChildProcess>();

/** Ends every command measure() is running (SIGTERM to GNU time, which passes it on). */
export function killMeasured(): void {
  for (const child of children) child.kill("SIGTERM");
}

/** One measured run. */
export interface Measured {
  /** Wall time measured here around the spawn (ms). */
  wallMs: number;
  /** User + system CPU time (ms). */
  cpuMs: number;
  userMs: number;
  systemMs: number;
  /** Peak resident set size (MiB). */
  maxRssMiB: number;
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Fails with a hint when GNU time is not installed (BusyBox and shell `time` lack -v). */
export async function requireGnuTime(): Promise<void> {
  try {
    await access(GNU_TIME, constants.X_OK);
  } catch {
    throw new Error(
      `${GNU_TIME} not found: the benchmark needs GNU time (apt-get install -y time)`,
    );
  }
}

/** Parses the report `time -v` writes to its `-o` file or stderr. */
export function parseGnuTime(text: string): Pick<Measured, "userMs" | "systemMs" | "maxRssMiB"> & {
  elapsedMs: number;
} {
  const num = (re: RegExp): number => {
    const m = re.exec(text);
    if (!m) throw new Error(`GNU time output lacks ${re.source}:\n${text}`);
    return Number(m[1]);
  };
  const elapsed = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([0-9:.]+)/.exec(text);
  let elapsedMs = NaN;
  if (elapsed) {
    const parts = elapsed[1]!.split(":").map(Number);
    elapsedMs = parts.reduce((acc, p) => acc * 60 + p, 0) * 1000;
  }
  return {
    userMs: num(/User time \(seconds\): ([0-9.]+)/) * 1000,
    systemMs: num(/System time \(seconds\): ([0-9.]+)/) * 1000,
    maxRssMiB: num(/Maximum resident set size \(kbytes\): ([0-9]+)/) / 1024,
    elapsedMs,
  };
}

/**
 * Runs `command args…` under `/usr/bin/time -v -o <file>` (so the command's own
 * stderr stays separate) and collects everything. Never rejects on a non-zero exit.
 */
export async function measure(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeFile: string; timeoutMs?: number },
): Promise<Measured> {
  await rm(options.timeFile, { force: true });
  const t0 = performance.now();
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(GNU_TIME, ["-v", "-o", options.timeFile, command, ...args], {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.add(child);
      child.on("exit", () => children.delete(child));
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30 * 60_000);
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    },
  );
  const wallMs = performance.now() - t0;
  const parsed = parseGnuTime(await readFile(options.timeFile, "utf8"));
  return {
    wallMs,
    cpuMs: parsed.userMs + parsed.systemMs,
    userMs: parsed.userMs,
    systemMs: parsed.systemMs,
    maxRssMiB: parsed.maxRssMiB,
    exitCode: result.code,
    stdout: result.stdout,
    stderr: result.stderr,
  };
}
