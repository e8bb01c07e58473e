/**
 * Output for commands: results on stdout (text or --json), progress and logs on
 * stderr, every line redacted. Progress redraws one line on a terminal and
 * prints plain lines otherwise.
 */
import { redact } from "../redact.js";

/** Output settings common to every command. */
export interface OutputOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/** Where a command writes; injectable for tests. */
export interface Streams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Writes results, logs and progress for one command run. */
export class Reporter {
  readonly json: boolean;
  readonly #quiet: boolean;
  readonly #verbose: boolean;
  readonly #streams: Streams;
  readonly #tty: boolean;
  #progressShown = false;
  #lastPlain = 0;

  constructor(
    options: OutputOptions,
    streams: Streams = { stdout: process.stdout, stderr: process.stderr },
  ) {
    this.json = options.json === true;
    this.#quiet = options.quiet === true;
    this.#verbose = options.verbose === true;
    this.#streams = streams;
    this.#tty = streams.stderr.isTTY === true;
  }

  /** A line on stdout (text mode only). */
  result(line: string): void {
    if (!this.json) this.#streams.stdout.write(`${redact(line)}\n`);
  }

  /** The --json document on stdout. */
  resultJson(value: unknown): void {
    if (this.json) this.#streams.stdout.write(`${redact(JSON.stringify(value, null, 2))}\n`);
  }

  /** An informational line on stderr (hidden by --quiet). */
  info(line: string): void {
    if (!this.#quiet) this.#line(line);
  }

  /** A warning on stderr (shown even with --quiet). */
  warn(line: string): void {
    this.#line(`warning: ${line}`);
  }

  /** A detail line on stderr (only with --verbose). */
  debug(line: string): void {
    if (this.#verbose) this.#line(line);
  }

  /** Progress of a phase: a redrawn line on a terminal, a plain line at most every 2 s otherwise. */
  progress(phase: string, done: number, total: number, label = ""): void {
    if (this.#quiet) return;
    const text = `${phase} ${done}/${total}${label ? ` ${label}` : ""}`;
    if (this.#tty) {
      this.#streams.stderr.write(`\r\x1b[2K${redact(text)}`);
      this.#progressShown = true;
      if (done === total) this.#endProgress();
      return;
    }
    const now = Date.now();
    if (done === total || now - this.#lastPlain >= 2000 || this.#verbose) {
      this.#lastPlain = now;
      this.#streams.stderr.write(`${redact(text)}\n`);
    }
  }

  #endProgress(): void {
    if (this.#progressShown) {
      this.#streams.stderr.write("\n");
      this.#progressShown = false;
    }
  }

  #line(line: string): void {
    if (this.#progressShown) this.#streams.stderr.write("\r\x1b[2K");
    this.#streams.stderr.write(`${redact(line)}\n`);
    this.#progressShown = false;
  }
}
