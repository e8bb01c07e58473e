/**
 * Strings kept for the whole run, held as one piece each.
 *
 * V8 builds `a + b` and template literals as rope nodes pointing at their
 * parts, and `s.slice()` as a view that keeps all of `s` alive. A string kept
 * for long (an index entry's path, source and identity, for every release of
 * a bundle) costs its parts' nodes for as long as it is kept: a signature
 * identity parsed character by character came to about 1.5 KiB instead of
 * under 100 bytes, and at 2000 releases such strings held over 5 MiB.
 */

/** Ropes and slices of fewer characters are copied flat by V8 already. */
const SHORT = 13;

/**
 * `s` as one flat string. JSON.stringify writes a new flat string and
 * JSON.parse reads it back as a new one; the round trip is exact for any
 * UTF-16 content, lone surrogates included.
 */
export function flat(s: string): string {
  return s.length < SHORT ? s : (JSON.parse(JSON.stringify(s)) as string);
}
