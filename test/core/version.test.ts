import { describe, expect, it } from "vitest";
import { compareVersions, isSemver, parseSemver, sortVersions } from "../../src/core/version.js";
import { isSigferryError } from "../../src/errors.js";

describe("compareVersions", () => {
  it("compares numeric parts as numbers, so 4.9 comes before 4.10", () => {
    expect(compareVersions("4.9.0", "4.10.0")).toBe(-1);
    expect(compareVersions("4.10.0", "4.9.53")).toBe(1);
    expect(compareVersions("4.13.9", "4.13.10")).toBe(-1);
    expect(compareVersions("10.0.0", "9.99.99")).toBe(1);
  });

  it("orders the SemVer 2.0.0 §11 example chain", () => {
    // Straight from semver.org §11.4: each is lower than the next.
    const chain = [
      "1.0.0-alpha",
      "1.0.0-alpha.1",
      "1.0.0-alpha.beta",
      "1.0.0-beta",
      "1.0.0-beta.2",
      "1.0.0-beta.11",
      "1.0.0-rc.1",
      "1.0.0",
    ];
    for (let i = 0; i + 1 < chain.length; i++) {
      expect(compareVersions(chain[i]!, chain[i + 1]!), `${chain[i]} < ${chain[i + 1]}`).toBe(-1);
      expect(compareVersions(chain[i + 1]!, chain[i]!)).toBe(1);
    }
  });

  it("puts a release candidate before its release and compares rc numbers numerically", () => {
    expect(compareVersions("4.12.0-rc.4", "4.12.0")).toBe(-1);
    expect(compareVersions("4.12.0-rc.9", "4.12.0-rc.10")).toBe(-1);
    expect(compareVersions("4.12.0-ec.5", "4.12.0-rc.0")).toBe(-1);
    // A pre-release of a newer version is still newer than an older release.
    expect(compareVersions("4.12.0-rc.0", "4.11.59")).toBe(1);
  });

  it("ignores build metadata (§10)", () => {
    expect(compareVersions("4.15.0+build.1", "4.15.0+build.2")).toBe(0);
    expect(compareVersions("4.15.0", "4.15.0+abc")).toBe(0);
  });

  it("compares numbers beyond 2^53 without losing precision", () => {
    expect(compareVersions("1.0.9007199254740993", "1.0.9007199254740992")).toBe(1);
  });
});

describe("parseSemver", () => {
  it("splits a version into its parts", () => {
    expect(parseSemver("4.12.0-rc.4+b.7")).toEqual({
      raw: "4.12.0-rc.4+b.7",
      major: "4",
      minor: "12",
      patch: "0",
      prerelease: ["rc", "4"],
      build: ["b", "7"],
    });
  });

  it.each([
    ["4.13", "not MAJOR.MINOR.PATCH"],
    ["v4.13.0", "not MAJOR.MINOR.PATCH"],
    ["4.013.0", "leading zero"],
    ["4.13.0-rc.01", "leading zero"],
    ["4.13.0-rc..1", "empty pre-release identifier"],
    ["4.13.0+", "not MAJOR.MINOR.PATCH"],
    ["", "not MAJOR.MINOR.PATCH"],
  ])("rejects %j with INVALID_VERSION (%s)", (value, why) => {
    try {
      parseSemver(value);
      expect.unreachable();
    } catch (err) {
      expect(isSigferryError(err, "INVALID_VERSION")).toBe(true);
      expect((err as Error).message).toContain(why);
    }
    expect(isSemver(value)).toBe(false);
  });
});

describe("sortVersions", () => {
  it("sorts the candidate-4.12 versions and mixed minors by precedence", () => {
    expect(
      sortVersions(["4.12.0", "4.10.3", "4.12.0-rc.10", "4.9.53", "4.12.0-rc.2", "4.12.0-rc.0"]),
    ).toEqual(["4.9.53", "4.10.3", "4.12.0-rc.0", "4.12.0-rc.2", "4.12.0-rc.10", "4.12.0"]);
  });
});
