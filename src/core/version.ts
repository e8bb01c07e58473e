/**
 * Semantic versions as OpenShift release versions use them (4.13.0,
 * 4.12.0-rc.4), and their precedence. Pure: no I/O.
 * Grammar and ordering: Semantic Versioning 2.0.0 (https://semver.org/spec/v2.0.0.html),
 * §2 (X.Y.Z, no leading zeros), §9 (pre-release), §10 (build metadata, ignored
 * for precedence) and §11 (precedence).
 */
import { SigferryError } from "../errors.js";

/** A parsed semantic version. Numeric parts are kept as digit strings so no size overflows. */
export interface Semver {
  /** The version exactly as given. */
  raw: string;
  major: string;
  minor: string;
  patch: string;
  /** Pre-release identifiers (§9), e.g. ["rc", "4"]; empty for a normal version. */
  prerelease: string[];
  /** Build metadata identifiers (§10); ignored when comparing. */
  build: string[];
}

const NUMERIC = /^(?:0|[1-9][0-9]*)$/;
const IDENTIFIER = /^[0-9A-Za-z-]+$/;
const SHAPE = /^([0-9]+)\.([0-9]+)\.([0-9]+)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$/;

/** Parses a semantic version (SemVer 2.0.0), or throws INVALID_VERSION saying what is wrong. */
export function parseSemver(value: string): Semver {
  const fail = (why: string): never => {
    throw new SigferryError(
      "INVALID_VERSION",
      `"${value}" is not a release version (${why}); expected e.g. 4.15.0 or 4.16.0-rc.1`,
      { details: { version: value } },
    );
  };
  const m = SHAPE.exec(value);
  if (!m) return fail("not MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]");
  const [, major = "", minor = "", patch = "", pre, build] = m;
  for (const [name, part] of [
    ["major", major],
    ["minor", minor],
    ["patch", patch],
  ] as const) {
    if (!NUMERIC.test(part)) fail(`the ${name} version "${part}" has a leading zero`);
  }
  const prerelease = pre === undefined ? [] : pre.split(".");
  for (const id of prerelease) {
    if (!IDENTIFIER.test(id)) fail("an empty pre-release identifier");
    if (/^[0-9]+$/.test(id) && !NUMERIC.test(id))
      fail(`the pre-release identifier "${id}" has a leading zero`);
  }
  const buildIds = build === undefined ? [] : build.split(".");
  if (buildIds.some((id) => !IDENTIFIER.test(id))) fail("an empty build identifier");
  return { raw: value, major, minor, patch, prerelease, build: buildIds };
}

/** True when `value` is a valid semantic version. */
export function isSemver(value: string): boolean {
  try {
    parseSemver(value);
    return true;
  } catch {
    return false;
  }
}

/** Compares two digit strings without leading zeros as numbers. */
function compareNumeric(a: string, b: string): -1 | 0 | 1 {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Compares one pre-release identifier with another (§11.4.1–11.4.3). */
function compareIdentifier(a: string, b: string): -1 | 0 | 1 {
  const an = /^[0-9]+$/.test(a);
  const bn = /^[0-9]+$/.test(b);
  if (an && bn) return compareNumeric(a, b);
  // Numeric identifiers always have lower precedence than alphanumeric ones.
  if (an) return -1;
  if (bn) return 1;
  // ASCII order: compare code units, not locale collation.
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders two parsed versions by SemVer 2.0.0 §11 precedence (build metadata ignored). */
export function compareSemver(a: Semver, b: Semver): -1 | 0 | 1 {
  const core =
    compareNumeric(a.major, b.major) ||
    compareNumeric(a.minor, b.minor) ||
    compareNumeric(a.patch, b.patch);
  if (core !== 0) return core;
  // A version without pre-release outranks any pre-release of it (§11.3).
  if (a.prerelease.length === 0 || b.prerelease.length === 0) {
    if (a.prerelease.length === b.prerelease.length) return 0;
    return a.prerelease.length === 0 ? 1 : -1;
  }
  const n = Math.min(a.prerelease.length, b.prerelease.length);
  for (let i = 0; i < n; i++) {
    const c = compareIdentifier(a.prerelease[i] ?? "", b.prerelease[i] ?? "");
    if (c !== 0) return c;
  }
  // A larger set of pre-release fields has higher precedence when all before are equal (§11.4.4).
  return a.prerelease.length === b.prerelease.length
    ? 0
    : a.prerelease.length < b.prerelease.length
      ? -1
      : 1;
}

/** Orders two version strings by SemVer precedence (4.9.0 < 4.10.0; 4.12.0-rc.4 < 4.12.0); throws INVALID_VERSION. */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  return compareSemver(parseSemver(a), parseSemver(b));
}

/** A copy of `versions` sorted ascending by SemVer precedence; throws INVALID_VERSION. */
export function sortVersions(versions: readonly string[]): string[] {
  return versions
    .map((v) => parseSemver(v))
    .sort(compareSemver)
    .map((s) => s.raw);
}
