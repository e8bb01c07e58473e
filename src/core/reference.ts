/**
 * Repository references (`host[:port]/path`) and release tags. Pure: no I/O.
 * Grammar: distribution/reference (docker/distribution reference.go): a domain
 * is recognised by a dot, a colon or "localhost"; paths are lowercase components.
 */
import { SigferryError } from "../errors.js";

/** The tag arch names of OpenShift release images. */
export const RELEASE_ARCHES = ["x86_64", "aarch64", "ppc64le", "s390x", "multi"] as const;
export type ReleaseArch = (typeof RELEASE_ARCHES)[number];

/** The default upstream release repository. */
export const DEFAULT_RELEASE_REPO = "quay.io/openshift-release-dev/ocp-release";

/** A repository on a registry. */
export interface RepositoryRef {
  /** host[:port], as written (e.g. "quay.io", "127.0.0.1:5000"). */
  registry: string;
  /** The repository path inside the registry (e.g. "openshift-release-dev/ocp-release"). */
  path: string;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;

/** Parses `host[:port]/path` into a RepositoryRef, or throws INVALID_REFERENCE. */
export function parseRepository(value: string): RepositoryRef {
  const slash = value.indexOf("/");
  const fail = (why: string): never => {
    throw new SigferryError(
      "INVALID_REFERENCE",
      `"${value}" is not a repository reference: ${why}`,
    );
  };
  if (slash <= 0) return fail("expected host[:port]/path");
  const registry = value.slice(0, slash);
  const path = value.slice(slash + 1);
  if (
    !registry.includes(".") &&
    !registry.includes(":") &&
    registry !== "localhost" &&
    !registry.startsWith("[")
  ) {
    return fail(`"${registry}" does not look like a registry host`);
  }
  if (!HOST.test(registry)) return fail(`"${registry}" is not a valid host[:port]`);
  if (path.includes("@") || /:[^/]*$/.test(path))
    return fail("give the repository only, without a tag or digest");
  const parts = path.split("/");
  if (parts.some((p) => !PATH_COMPONENT.test(p)))
    return fail(`"${path}" is not a valid repository path`);
  return { registry, path };
}

/** `host/path` of a RepositoryRef. */
export function formatRepository(ref: RepositoryRef): string {
  return `${ref.registry}/${ref.path}`;
}

/** Normalises an arch name given by a user to the tag arch (amd64 → x86_64, arm64 → aarch64). */
export function parseReleaseArch(value: string): ReleaseArch {
  const v = value.trim().toLowerCase();
  const alias: Record<string, ReleaseArch> = { amd64: "x86_64", arm64: "aarch64" };
  const arch = alias[v] ?? v;
  if ((RELEASE_ARCHES as readonly string[]).includes(arch)) return arch as ReleaseArch;
  throw new SigferryError(
    "USAGE",
    `unknown arch "${value}": use one of ${RELEASE_ARCHES.join(", ")}`,
  );
}

/** The update-graph arch name of a tag arch (x86_64 → amd64, aarch64 → arm64). */
export function graphArch(arch: ReleaseArch): string {
  return arch === "x86_64" ? "amd64" : arch === "aarch64" ? "arm64" : arch;
}

/** The tag arch of an OCI platform architecture (amd64 → x86_64, arm64 → aarch64). */
export function archFromPlatform(architecture: string): string {
  return architecture === "amd64" ? "x86_64" : architecture === "arm64" ? "aarch64" : architecture;
}

const VERSION = /^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/** Validates a release version (semver, as in release tags), or throws INVALID_VERSION. */
export function parseVersion(value: string): string {
  if (!VERSION.test(value)) {
    throw new SigferryError(
      "INVALID_VERSION",
      `"${value}" is not a release version (expected e.g. 4.15.0)`,
    );
  }
  return value;
}

/** The release tag `<version>-<arch>`. */
export function releaseTag(version: string, arch: ReleaseArch): string {
  return `${version}-${arch}`;
}
