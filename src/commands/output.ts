/**
 * Output for commands: results on stdout (text or --json), progress and logs on
 * stderr, every line redacted. Progress redraws one line on a terminal and
 * prints plain lines otherwise (the first and last step of each phase, and at
 * most one line every two seconds in between; every step with --verbose).
 *
 * Every --json document, the error document included, starts with
 * `"schemaVersion"` and `"command"`; docs/schema/sigferry-output.schema.json
 * describes them all.
 */
import { redact } from "../redact.js";
import { jsonChunks } from "../core/json-stream.js";

/** The version of the --json documents (docs/schema/sigferry-output.schema.json). */
export const JSON_SCHEMA_VERSION = 1;

/** The `command` value of each --json document ("sigferry" when no command was recognised). */
export type CommandName =
  | "bundle create"
  | "bundle verify"
  | "bundle inspect"
  | "bundle apply"
  | "bundle diff"
  | "bundle export-manifests"
  | "bundle export-store"
  | "check"
  | "sigferry";

/** Output settings common to every command. */
export interface OutputOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/** Where a command writes; injectable for tests. */
export interface Streams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

/** Reporter settings beyond the user's flags. */
export interface ReporterSettings {
  /** The command whose documents this reporter writes. */
  command?: CommandName;
  /** Force terminal (true) or plain (false) progress; default: stderr.isTTY and TERM is not "dumb". */
  tty?: boolean;
}

/** Wraps a command's result in the versioned --json envelope. */
export function jsonDocument(command: CommandName, value: object): Record<string, unknown> {
  return { schemaVersion: JSON_SCHEMA_VERSION, command, ...value };
}

const PLAIN_INTERVAL_MS = 2000;
const BAR_WIDTH = 20;

/** Writes results, logs and progress for one command run. */
export class Reporter {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly command: CommandName;
  readonly #streams: Streams;
  readonly #tty: boolean;
  #progressShown = false;
  #plainPhase = "";
  #lastPlain = 0;

  constructor(
    options: OutputOptions,
    streams: Streams = { stdout: process.stdout, stderr: process.stderr },
    settings: ReporterSettings = {},
  ) {
    this.json = options.json === true;
    this.quiet = options.quiet === true;
    this.verbose = options.verbose === true && !this.quiet;
    this.command = settings.command ?? "sigferry";
    this.#streams = streams;
    this.#tty = settings.tty ?? (streams.stderr.isTTY === true && process.env.TERM !== "dumb");
  }

  /** Whether progress is drawn as a redrawn terminal line. */
  get tty(): boolean {
    return this.#tty;
  }

  /** A line on stdout (text mode only). */
  result(line: string): void {
    if (!this.json) this.#streams.stdout.write(`${redact(line)}\n`);
  }

  /** Raw text on stdout (text mode only), e.g. a Markdown document; a final newline is ensured. */
  resultText(text: string): void {
    if (!this.json) this.#streams.stdout.write(redact(text.endsWith("\n") ? text : `${text}\n`));
  }

  /**
   * The --json document on stdout, wrapped with schemaVersion and command.
   * Written and redacted piece by piece: for thousands of releases the
   * document runs to megabytes, and building, redacting and encoding it whole
   * raised the peak memory at the very end of the run.
   */
  resultJson(value: object): void {
    if (!this.json) return;
    // No backpressure handling, so that this stays synchronous for its callers:
    // files and terminals take each write synchronously, and a pipe does while
    // its reader keeps up. A pipe whose reader lags queues the pieces in
    // memory, which is no more than the single write this replaced held.
    for (const chunk of jsonChunks(jsonDocument(this.command, value))) {
      this.#streams.stdout.write(redact(chunk));
    }
    this.#streams.stdout.write("\n");
  }

  /** An informational line on stderr (hidden by --quiet). */
  info(line: string): void {
    if (!this.quiet) this.#line(line);
  }

  /** A warning on stderr (shown even with --quiet). */
  warn(line: string): void {
    this.#line(`warning: ${line}`);
  }

  /** A detail line on stderr (only with --verbose). */
  debug(line: string): void {
    if (this.verbose) this.#line(line);
  }

  /**
   * Progress of a phase (resolve, fetch, verify, write, push, apply …): on a
   * terminal a redrawn line with a bar and the current item; otherwise plain
   * lines for the first and last step and at most one every two seconds
   * between them (every step with --verbose). Hidden by --quiet.
   */
  progress(phase: string, done: number, total: number, label = ""): void {
    if (this.quiet) return;
    const count = `${done}/${total}`;
    if (this.#tty) {
      const filled = total > 0 ? Math.round((done / total) * BAR_WIDTH) : BAR_WIDTH;
      const bar = `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}]`;
      const width = Math.max(20, (this.#streams.stderr.columns ?? 80) - 1);
      const text = `${phase} ${bar} ${count}${label ? ` ${label}` : ""}`;
      // A line longer than the terminal wraps, and \r then redraws only its last part.
      const fitted = text.length > width ? `${text.slice(0, width - 1)}…` : text;
      this.#streams.stderr.write(`\r\x1b[2K${redact(fitted)}`);
      this.#progressShown = true;
      if (done >= total) this.endProgress();
      return;
    }
    const now = Date.now();
    const first = phase !== this.#plainPhase;
    if (first || done >= total || this.verbose || now - this.#lastPlain >= PLAIN_INTERVAL_MS) {
      this.#plainPhase = phase;
      this.#lastPlain = now;
      this.#streams.stderr.write(`${redact(`${phase} ${count}${label ? ` ${label}` : ""}`)}\n`);
    }
  }

  /** Ends a redrawn progress line (before an error is printed by someone else). */
  endProgress(): void {
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
