/**
 * Safety limits for archives. The reader refuses (ARCHIVE_LIMIT) an archive
 * beyond them before it buffers the excess, and the writer refuses to write
 * one, so that every archive sigferry writes can be read back with the defaults.
 */
import { SigferryError } from "../errors.js";

/** The limits a reader enforces; see DEFAULT_LIMITS for what each counts. */
export interface ArchiveLimits {
  /** Most entries (members) in one archive. */
  maxEntries: number;
  /** Largest member, in bytes, as declared by its header (checked before its body is read). */
  maxEntrySize: number;
  /**
   * Most bytes of uncompressed tar stream: headers, bodies, padding, the
   * end-of-archive blocks and any zero padding after them. Counted after gunzip,
   * so a gzip bomb stops here whatever its compressed size.
   */
  maxTotalSize: number;
}

/**
 * The default limits. A sigferry archive holds small members (an OpenPGP
 * signature is at most 50 KiB, a cosign manifest or layer a few KiB, a
 * ConfigMap at most 1 MiB) and three that grow with the number of releases:
 * index.json (about 2.6 KB per single-arch release), REPORT.md and
 * checksums.sha256. 4 MiB per entry stopped `bundle create` at about 1 600
 * releases (bench/, docs/benchmarks.md); 32 MiB carries some 12 000, and adds
 * nothing to the worst case a reader holds, which maxTotalSize bounds:
 * 100 000 entries, 32 MiB per entry, 512 MiB of uncompressed tar in all.
 */
export const DEFAULT_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxEntries: 100_000,
  maxEntrySize: 32 * 1024 * 1024,
  maxTotalSize: 512 * 1024 * 1024,
});

/** The defaults with the given overrides, each checked to be a non-negative safe integer. */
export function resolveLimits(limits: Partial<ArchiveLimits> = {}): ArchiveLimits {
  const resolved: ArchiveLimits = { ...DEFAULT_LIMITS };
  for (const key of ["maxEntries", "maxEntrySize", "maxTotalSize"] as const) {
    const value = limits[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new SigferryError(
        "USAGE",
        `archive limit ${key} must be a non-negative integer, got ${String(value)}`,
      );
    }
    resolved[key] = value;
  }
  return resolved;
}
