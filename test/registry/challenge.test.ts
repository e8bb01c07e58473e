/** WWW-Authenticate parsing (RFC 7235) as registries write it. */
import { describe, expect, it } from "vitest";
import { challengeScopes, parseChallenges, pickChallenge } from "../../src/registry/challenge.js";

describe("parseChallenges", () => {
  it("reads a Bearer challenge with realm, service and scope", () => {
    expect(
      parseChallenges(
        'Bearer realm="https://quay.io/v2/auth",service="quay.io",scope="repository:openshift-release-dev/ocp-release:pull"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://quay.io/v2/auth",
          service: "quay.io",
          scope: "repository:openshift-release-dev/ocp-release:pull",
        },
      },
    ]);
  });

  it("reads a Basic challenge, spaces around '=' and unquoted values", () => {
    expect(parseChallenges("Basic realm = registry")).toEqual([
      { scheme: "basic", params: { realm: "registry" } },
    ]);
  });

  it("reads several challenges in one header and picks Bearer over Basic", () => {
    const challenges = parseChallenges(
      'Basic realm="a", Bearer realm="https://b/token", service="b"',
    );
    expect(challenges.map((c) => c.scheme)).toEqual(["basic", "bearer"]);
    expect(pickChallenge(challenges)?.params).toEqual({ realm: "https://b/token", service: "b" });
  });

  it("unescapes quoted-pairs and keeps commas inside quotes", () => {
    expect(parseChallenges('Bearer realm="a\\"b,c",error="insufficient_scope"')[0]?.params).toEqual(
      {
        realm: 'a"b,c',
        error: "insufficient_scope",
      },
    );
  });

  it("treats parameter names and schemes case-insensitively", () => {
    expect(parseChallenges('BEARER Realm="r"')).toEqual([
      { scheme: "bearer", params: { realm: "r" } },
    ]);
  });

  it("reads a token68 challenge without mistaking it for parameters", () => {
    expect(parseChallenges("Negotiate abc123==, Basic realm=x")).toEqual([
      { scheme: "negotiate", params: {}, token68: "abc123==" },
      { scheme: "basic", params: { realm: "x" } },
    ]);
  });

  it("returns nothing for an empty or garbage header", () => {
    expect(parseChallenges("")).toEqual([]);
    expect(pickChallenge(parseChallenges(",,, ;;"))).toBeUndefined();
  });

  it("splits distribution's space-separated scopes", () => {
    const [challenge] = parseChallenges(
      'Bearer realm="r",scope="repository:a:pull,push repository:b:pull"',
    );
    expect(challengeScopes(challenge!)).toEqual(["repository:a:pull,push", "repository:b:pull"]);
  });
});
