/**
 * Archive member paths: the one rule both the archive writer and the reader
 * apply, so that the writer never produces a name the reader refuses and the
 * reader never accepts a name that could escape, collide or be misread when
 * the archive is extracted with `tar -xf` on Linux, macOS or Windows. Pure: no I/O.
 *
 * A member path is relative, `/`-separated, with no empty, `.` or `..`
 * component, no leading `./` (one name has one spelling), and none of: NUL or
 * other control characters, backslash, colon. It is at most
 * MAX_MEMBER_PATH_BYTES UTF-8 bytes, each component at most
 * MAX_COMPONENT_BYTES.
 */

/** Longest member path, in UTF-8 bytes (well under PATH_MAX on every platform). */
export const MAX_MEMBER_PATH_BYTES = 1024;
/** Longest path component, in UTF-8 bytes (NAME_MAX on Linux and macOS). */
export const MAX_COMPONENT_BYTES = 255;

const utf8 = new TextEncoder();

// C0 controls, DEL and C1 controls. Why: a newline would split a sha256sum line
// (sha256sum then escapes the name with a leading backslash, which we never
// write), NUL truncates names in C, and other controls hide names in listings.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

// In a `u` regular expression a surrogate pair is one code point, so this only
// matches a surrogate without its partner.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * Why a path is not an acceptable member path, or undefined when it is.
 * Every check here exists to stop an extraction from writing outside the
 * target directory or from writing a file other than the one named.
 */
export function memberPathProblem(memberPath: string): string | undefined {
  if (memberPath.length === 0) return "the path is empty";
  // Why: an absolute path is written where it says, not under the target directory.
  if (memberPath.startsWith("/")) return "the path is absolute";
  // Why: NUL truncates the name for C tools; other controls break sha256sum lines.
  if (CONTROL.test(memberPath)) return "the path holds a control character (NUL, newline…)";
  // Why: Windows (and tar on Windows) treats a backslash as a separator, so
  // `a\..\..\b` escapes there even though it is one harmless name on Linux.
  if (memberPath.includes("\\")) return "the path holds a backslash";
  // Why: `C:x` is drive-relative on Windows and `name:stream` writes an NTFS
  // alternate data stream; sigferry member paths never need a colon.
  if (memberPath.includes(":")) return "the path holds a colon";
  // Why: a lone surrogate cannot be encoded in UTF-8, so the name on disk would
  // differ from the name checked here.
  if (LONE_SURROGATE.test(memberPath)) return "the path is not valid Unicode";
  if (utf8.encode(memberPath).length > MAX_MEMBER_PATH_BYTES) {
    return `the path is longer than ${MAX_MEMBER_PATH_BYTES} bytes`;
  }
  for (const component of memberPath.split("/")) {
    // Why: `a//b`, a trailing `/` and `./a` are other spellings of a name, which
    // would let two entries name one file without being duplicates byte for byte.
    if (component === "") return "the path has an empty component (`//` or a trailing `/`)";
    if (component === ".") return "the path has a `.` component";
    // Why: `..` climbs out of the directory the archive is extracted into.
    if (component === "..") return "the path has a `..` component";
    if (utf8.encode(component).length > MAX_COMPONENT_BYTES) {
      return `a path component is longer than ${MAX_COMPONENT_BYTES} bytes`;
    }
  }
  return undefined;
}

/**
 * The key under which two member paths name the same file on some file system:
 * Unicode compatibility-normalised (NFKC) and case-folded (upper then lower
 * case, so that `ß`/`SS` and `K`/Kelvin sign meet). Deliberately broader than
 * any one file system: over-refusing costs nothing for sigferry names.
 */
export function memberCollisionKey(memberPath: string): string {
  // ASCII is its own NFKC form, and upper then lower case of ASCII is its lower case.
  if (isAscii(memberPath)) return memberPath.toLowerCase();
  return memberPath.normalize("NFKC").toUpperCase().toLowerCase().normalize("NFKC");
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Compares two paths by UTF-8 byte order (the order of Unicode code points), for sorting members. */
export function comparePaths(a: string, b: string): number {
  // Why not `a < b`: JavaScript compares UTF-16 code units, which orders
  // U+E000..U+FFFF after astral characters; UTF-8 byte order (what `sort` in
  // the C locale and every other tool uses) does not. The two orders differ
  // only where a surrogate meets a unit of U+E000 and above, so the first
  // differing unit decides unless one of the two is a surrogate or above.
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
  const ua = a.charCodeAt(i);
  const ub = b.charCodeAt(i);
  if (ua < 0xd800 && ub < 0xd800) return ua < ub ? -1 : 1;
  // A high surrogate reads as its whole code point; a low one (the pair's
  // high half was equal) as itself, which orders the pair correctly.
  const ca = a.codePointAt(i)!;
  const cb = b.codePointAt(i)!;
  return ca < cb ? -1 : ca > cb ? 1 : 0;
}

/**
 * A set of member paths that refuses a path that would overwrite or clash with
 * one already added when extracted: the same path, the same path after Unicode
 * normalisation or case folding, or a file where another path needs a
 * directory (`a` and `a/b`).
 */
export class MemberPathSet {
  readonly #files = new Map<string, string>();
  readonly #dirs = new Map<string, string>();

  /** Adds a path already accepted by memberPathProblem; returns why it clashes, or undefined. */
  add(memberPath: string): string | undefined {
    const key = memberCollisionKey(memberPath);
    const same = this.#files.get(key);
    // Why: a second entry with the same name silently replaces the first on
    // extraction, so what was checked is not what ends up on disk.
    if (same === memberPath) return "the archive already has a member with this path";
    // Why: on macOS and Windows (case-insensitive, normalising file systems)
    // the second entry overwrites the first.
    if (same !== undefined) {
      return `the path collides with ${quotePath(same)} after Unicode normalisation or case folding`;
    }
    const dirUser = this.#dirs.get(key);
    if (dirUser !== undefined) return `the path is also a directory of ${quotePath(dirUser)}`;
    // The keys of the path's directories: `a`, `a/b`, … for `a/b/c`.
    const dirKeys: string[] = [];
    for (let end = memberPath.indexOf("/"); end !== -1; end = memberPath.indexOf("/", end + 1)) {
      const dirKey = memberCollisionKey(memberPath.slice(0, end));
      const fileAtDir = this.#files.get(dirKey);
      // Why: extracting `a/b` after a file `a` either fails or replaces the file.
      if (fileAtDir !== undefined)
        return `a directory of the path is the file ${quotePath(fileAtDir)}`;
      dirKeys.push(dirKey);
    }
    this.#files.set(key, memberPath);
    for (const dirKey of dirKeys) if (!this.#dirs.has(dirKey)) this.#dirs.set(dirKey, memberPath);
    return undefined;
  }

  /** How many paths the set holds. */
  get size(): number {
    return this.#files.size;
  }
}

/**
 * Quotes a path for an error message in JSON string syntax. Why: names come
 * from untrusted archives, and a raw escape sequence in one would reach the
 * user's terminal.
 */
export function quotePath(memberPath: string): string {
  return JSON.stringify(memberPath);
}
