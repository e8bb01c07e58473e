/**
 * The checksum list inside a bundle (`checksums.sha256`) and the sidecar next
 * to it (`<archive>.sha256`), both in the text format of GNU coreutils
 * `sha256sum` (`<64 lowercase hex>  <path>\n`), so that `sha256sum -c` checks
 * them without sigferry. Pure: no I/O.
 *
 * Parsing is strict: sigferry only reads what formatChecksums and sidecarLine
 * write. Refused: uppercase hex, the binary-mode marker (`<hex> *<path>`, which
 * `sha256sum -b` writes; sigferry always writes text mode, and one spelling
 * keeps the list canonical), backslash-escaped names, CRLF line ends, blank
 * lines, a missing final newline (a cut-off list), duplicate paths and any
 * path memberPathProblem refuses.
 */
import { SigferryError } from "../errors.js";
import { MEMBER } from "./bundle-index.js";
import { comparePaths, memberPathProblem, quotePath } from "./member-path.js";

const SHA256_HEX = /^[0-9a-f]{64}$/;
const ANY_CASE_HEX = /^[0-9a-fA-F]{64}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** One line of a checksum list: a member path and the sha256 hex of its bytes. */
export interface ChecksumEntry {
  path: string;
  sha256: string;
}

/** A disagreement between a checksum list and the members actually present. */
export interface ChecksumProblem {
  /** unlisted: present but not in the list; missing: listed but absent; mismatch: bytes hash differently. */
  kind: "unlisted" | "missing" | "mismatch";
  member: string;
  /** What is wrong, without the member name (print as `<member>: <reason>`). */
  reason: string;
  /** The sha256 the list names (missing, mismatch). */
  expected?: string;
  /** The sha256 of the bytes present (unlisted, mismatch). */
  actual?: string;
}

/** The `sha256sum` text for a checksum list: one `<hex>  <path>` line per entry, sorted by path in byte order. */
export function formatChecksums(entries: readonly ChecksumEntry[]): string {
  return [...checksumLines(entries)].join("");
}

/** The lines of formatChecksums one by one, each with its newline (a large list need not be one string). */
export function* checksumLines(entries: readonly ChecksumEntry[]): Generator<string> {
  const sorted = [...entries].sort((a, b) => comparePaths(a.path, b.path));
  let previous: string | undefined;
  for (const entry of sorted) {
    // Why: the writer of a list must never produce one its reader refuses.
    const problem = memberPathProblem(entry.path);
    if (problem !== undefined) {
      throw new SigferryError("INTERNAL", `checksum list: ${quotePath(entry.path)}: ${problem}`, {
        details: { member: entry.path },
      });
    }
    if (!SHA256_HEX.test(entry.sha256)) {
      throw new SigferryError(
        "INTERNAL",
        `checksum list: ${quotePath(entry.path)}: ${quotePath(entry.sha256)} is not 64 lowercase hex digits`,
        { details: { member: entry.path } },
      );
    }
    if (entry.path === previous) {
      throw new SigferryError(
        "INTERNAL",
        `checksum list: ${quotePath(entry.path)} is listed twice`,
        {
          details: { member: entry.path },
        },
      );
    }
    previous = entry.path;
    yield `${entry.sha256}  ${entry.path}\n`;
  }
}

/**
 * Parses a checksum list into path → sha256 hex; throws ARCHIVE_CORRUPT naming
 * the line for anything formatChecksums would not have written.
 */
export function parseChecksums(
  text: string,
  source: string = MEMBER.checksums,
): Map<string, string> {
  const listed = new Map<string, string>();
  const fail = (line: number, reason: string): SigferryError =>
    new SigferryError("ARCHIVE_CORRUPT", `${source} line ${line}: ${reason}`, {
      details: { member: source, line },
    });
  if (text === "") return listed;
  const lines = text.split("\n");
  // Why: a list without its final newline may have been cut off mid-line, and
  // a cut-off path could still name a real member.
  if (lines.pop() !== "") throw fail(lines.length + 1, "the last line does not end with a newline");
  lines.forEach((line, i) => {
    const n = i + 1;
    const { sha256, path } = parseLine(line, (reason) => fail(n, reason));
    // Why: `..` or an absolute path in the list would make `sha256sum -c` read a
    // file outside the extracted bundle.
    const problem = memberPathProblem(path);
    if (problem !== undefined) throw fail(n, `${quotePath(path)}: ${problem}`);
    // Why: with two lines for one path, one of them is checked against bytes the
    // other was not computed from; the list is not one sigferry wrote.
    if (listed.has(path)) throw fail(n, `${quotePath(path)} is listed twice`);
    listed.set(path, sha256);
  });
  return listed;
}

/**
 * Compares a checksum list with the members present (path → sha256 and size);
 * members named in `exempt` (the list itself) may be absent from the list.
 * Returns every problem, sorted by member; an empty array means they agree.
 */
export function checkMembers(
  listed: ReadonlyMap<string, string>,
  actual: ReadonlyMap<string, { sha256: string; size: number }>,
  exempt: readonly string[],
): ChecksumProblem[] {
  const problems: ChecksumProblem[] = [];
  const exempted = new Set(exempt);
  for (const [member, { sha256, size }] of actual) {
    const expected = listed.get(member);
    if (expected === undefined) {
      // Why: an extra member is content nobody vouched for (zarf refuses extra
      // files for the same reason); only the list itself may be unlisted.
      if (!exempted.has(member)) {
        problems.push({
          kind: "unlisted",
          member,
          actual: sha256,
          reason: `in the archive (${size} bytes) but not in the checksum list`,
        });
      }
    } else if (expected !== sha256) {
      problems.push({
        kind: "mismatch",
        member,
        expected,
        actual: sha256,
        reason: `its ${size} bytes have sha256 ${sha256}, the checksum list says ${expected}`,
      });
    }
  }
  for (const [member, expected] of listed) {
    if (!actual.has(member)) {
      problems.push({
        kind: "missing",
        member,
        expected,
        reason: "in the checksum list but not in the archive",
      });
    }
  }
  return problems.sort((a, b) => comparePaths(a.member, b.member) || a.kind.localeCompare(b.kind));
}

/** The one-line sidecar (`<archive>.sha256`) for an archive file: `<hex>  <fileName>\n`. */
export function sidecarLine(sha256: string, fileName: string): string {
  if (!SHA256_HEX.test(sha256)) {
    throw new SigferryError(
      "INTERNAL",
      `sidecar: ${quotePath(sha256)} is not 64 lowercase hex digits`,
    );
  }
  const problem = fileNameProblem(fileName);
  if (problem !== undefined) {
    throw new SigferryError("INTERNAL", `sidecar: ${quotePath(fileName)}: ${problem}`, {
      details: { file: fileName },
    });
  }
  return `${sha256}  ${fileName}\n`;
}

/**
 * Parses a sidecar and returns the sha256 hex it holds; when `expectedName` is
 * given, the file name in it must be that one (CHECKSUM_MISMATCH otherwise).
 * Malformed text throws ARCHIVE_CORRUPT.
 */
export function parseSidecar(text: string, expectedName?: string): string {
  const fail = (reason: string): SigferryError =>
    new SigferryError("ARCHIVE_CORRUPT", `sidecar: ${reason}`, {
      details: expectedName === undefined ? {} : { file: `${expectedName}.sha256` },
    });
  const lines = text.split("\n");
  if (lines.pop() !== "") throw fail("the line does not end with a newline");
  if (lines.length !== 1) throw fail(`expected exactly one line, found ${lines.length}`);
  const { sha256, path: fileName } = parseLine(lines[0] ?? "", fail);
  const problem = fileNameProblem(fileName);
  if (problem !== undefined) throw fail(`${quotePath(fileName)}: ${problem}`);
  // Why: a sidecar for another file proves nothing about this one.
  if (expectedName !== undefined && fileName !== expectedName) {
    throw new SigferryError(
      "CHECKSUM_MISMATCH",
      `sidecar: it is for ${quotePath(fileName)}, not ${quotePath(expectedName)}`,
      { details: { file: expectedName } },
    );
  }
  return sha256;
}

function parseLine(
  line: string,
  fail: (reason: string) => SigferryError,
): { sha256: string; path: string } {
  if (line === "") throw fail("the line is empty");
  if (line.endsWith("\r")) throw fail("the line ends with a carriage return (CRLF line ends)");
  // sha256sum prefixes a line with `\` when it had to escape the name.
  if (line.startsWith("\\")) throw fail("escaped names (a leading `\\`) are not accepted");
  const hex = line.slice(0, 64);
  if (!SHA256_HEX.test(hex)) {
    throw fail(
      ANY_CASE_HEX.test(hex)
        ? "the sha256 is not lowercase"
        : "the line does not start with 64 hex digits",
    );
  }
  if (line[64] !== " ") throw fail("the sha256 is not followed by a space");
  if (line[65] === "*") {
    throw fail("the binary-mode marker `*` is not accepted (sigferry writes text mode)");
  }
  if (line[65] !== " ") throw fail("the sha256 is not followed by two spaces");
  const path = line.slice(66);
  if (path === "") throw fail("the line names no file");
  return { sha256: hex, path };
}

function fileNameProblem(fileName: string): string | undefined {
  if (fileName === "" || fileName === "." || fileName === "..") return "not a file name";
  if (fileName.includes("/")) return "a sidecar names a file in its own directory, not a path";
  if (fileName.includes("\\")) return "the name holds a backslash";
  // Why: a newline would split the line; sha256sum would escape it, sigferry does not.
  if (CONTROL.test(fileName)) return "the name holds a control character";
  return undefined;
}
