/**
 * Text encoded piece by piece, for the large members of a bundle (index.json,
 * REPORT.md, checksums.sha256, the OCI layout index): never one string of the
 * whole document, nor one buffer of it. A buffer of a few MB is what costs:
 * once freed, glibc raises its mmap threshold to its size and keeps later
 * large blocks in the process (src/archive/member-read.ts).
 */

/** Default size of a piece, in characters. */
export const PIECE_SIZE = 65536;

/**
 * The UTF-8 bytes of the concatenated texts, in pieces of at least `pieceSize`
 * characters (the last may be shorter), each cut between two of the texts so
 * that no character is split.
 */
export function* utf8Pieces(
  texts: Iterable<string>,
  pieceSize = PIECE_SIZE,
): Generator<Uint8Array> {
  const encoder = new TextEncoder();
  let piece = "";
  for (const text of texts) {
    piece += text;
    if (piece.length >= pieceSize) {
      yield encoder.encode(piece);
      piece = "";
    }
  }
  if (piece !== "") yield encoder.encode(piece);
}
