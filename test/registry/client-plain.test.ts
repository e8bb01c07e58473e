/** The registry client against the real CNCF registry over plain http, cross-checked with skopeo. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSigferryError } from "../../src/errors.js";
import { RegistryClient, sha256Digest } from "../../src/registry/client.js";
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_INDEX,
  OCI_MANIFEST,
} from "../../src/registry/types.js";
import { startRegistry, type RegistryHandle } from "../world/registry.js";
import { content, makeImage, makeIndex, pushImage } from "./content.js";

const execFileAsync = promisify(execFile);

async function skopeoRaw(host: string, ref: string): Promise<Buffer> {
  const { stdout } = await execFileAsync(
    "skopeo",
    ["inspect", "--raw", "--no-creds", "--tls-verify=false", `docker://${host}/${ref}`],
    { encoding: "buffer" },
  );
  return stdout;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("RegistryClient against distribution over plain http", () => {
  let registry: RegistryHandle;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient(registry.host, { plainHttp: true });
  });

  afterAll(async () => {
    await client?.close();
    await registry?.stop();
  });

  describe("when an OCI image is pushed", () => {
    const image = makeImage("oci");

    it("uploads its blobs and stores the manifest under the computed digest", async () => {
      expect(await client.pushBlob("app/oci", image.config.digest, image.config.bytes)).toBe(
        "uploaded",
      );
      expect(await client.pushBlob("app/oci", image.layer.digest, image.layer.bytes)).toBe(
        "uploaded",
      );
      const digest = await client.putManifest(
        "app/oci",
        "v1",
        image.manifest.bytes,
        image.manifest.mediaType,
      );
      expect(digest).toBe(image.manifest.digest);
    });

    it("gets the manifest back byte for byte, by tag and by digest", async () => {
      for (const ref of ["v1", image.manifest.digest]) {
        const got = await client.getManifest("app/oci", ref);
        expect(got).toBeDefined();
        expect(Buffer.from(got!.bytes).equals(Buffer.from(image.manifest.bytes))).toBe(true);
        expect(got!.digest).toBe(image.manifest.digest);
        expect(got!.mediaType).toBe(OCI_MANIFEST);
      }
    });

    it("reports digest, media type and size on HEAD", async () => {
      expect(await client.headManifest("app/oci", "v1")).toEqual({
        digest: image.manifest.digest,
        mediaType: OCI_MANIFEST,
        size: image.manifest.size,
      });
    });

    it("gets the blobs back verified", async () => {
      const layer = await client.getBlob("app/oci", image.layer.digest, 1 << 20, {
        size: image.layer.size,
      });
      expect(Buffer.from(layer).equals(Buffer.from(image.layer.bytes))).toBe(true);
      expect(await client.hasBlob("app/oci", image.layer.digest)).toBe(true);
    });

    it("skips a blob that is already there, reporting it as existing", async () => {
      expect(await client.pushBlob("app/oci", image.layer.digest, image.layer.bytes)).toBe(
        "exists",
      );
    });

    it("serves exactly the pushed bytes to skopeo too", async () => {
      const raw = await skopeoRaw(registry.host, "app/oci:v1");
      expect(raw.equals(Buffer.from(image.manifest.bytes))).toBe(true);
    });
  });

  describe("when a Docker schema 2 image and manifest lists are pushed", () => {
    const amd64 = makeImage("docker", "amd64");
    const arm64 = makeImage("docker", "arm64");

    it("round-trips the Docker manifest with its media type", async () => {
      await pushImage(client, "app/docker", amd64, "amd64");
      await pushImage(client, "app/docker", arm64, "arm64");
      const got = await client.getManifest("app/docker", "amd64");
      expect(got?.digest).toBe(amd64.manifest.digest);
      expect(got?.mediaType).toBe(DOCKER_MANIFEST);
      expect(Buffer.from(got!.bytes).equals(Buffer.from(amd64.manifest.bytes))).toBe(true);
    });

    it("round-trips a Docker manifest list and an OCI index byte for byte", async () => {
      const entries = [
        { manifest: amd64.manifest, arch: "amd64" },
        { manifest: arm64.manifest, arch: "arm64" },
      ];
      for (const [kind, tag, mediaType] of [
        ["docker", "list", DOCKER_MANIFEST_LIST],
        ["oci", "index", OCI_INDEX],
      ] as const) {
        const index = makeIndex(kind, entries);
        expect(await client.putManifest("app/docker", tag, index.bytes, index.mediaType)).toBe(
          index.digest,
        );
        const got = await client.getManifest("app/docker", tag);
        expect(got?.mediaType).toBe(mediaType);
        expect(got?.digest).toBe(index.digest);
        expect(Buffer.from(got!.bytes).equals(Buffer.from(index.bytes))).toBe(true);
        const raw = await skopeoRaw(registry.host, `app/docker:${tag}`);
        expect(raw.equals(Buffer.from(index.bytes))).toBe(true);
      }
    });

    it("lists the tags of the repository", async () => {
      expect((await client.listTags("app/docker")).sort()).toEqual([
        "amd64",
        "arm64",
        "index",
        "list",
      ]);
    });
  });

  describe("when something is not there", () => {
    it("returns undefined for a missing tag, a missing digest and a missing repository", async () => {
      const missing = sha256Digest(new TextEncoder().encode("nothing"));
      expect(await client.getManifest("app/oci", "nope")).toBeUndefined();
      expect(await client.getManifest("app/oci", missing)).toBeUndefined();
      expect(await client.getManifest("no/such/repo", "v1")).toBeUndefined();
      expect(await client.headManifest("app/oci", "nope")).toBeUndefined();
    });

    it("reports a missing blob as absent, and its GET as an HTTP 404", async () => {
      const missing = content("absent blob");
      expect(await client.hasBlob("app/oci", missing.digest)).toBe(false);
      const err = await rejection(client.getBlob("app/oci", missing.digest, 1024));
      expect(isSigferryError(err, "HTTP_STATUS")).toBe(true);
      expect((err as { details: { status?: number } }).details.status).toBe(404);
    });

    it("lists no tags for a repository that does not exist", async () => {
      expect(await client.listTags("no/such/repo")).toEqual([]);
    });
  });

  describe("when a blob exists in another repository", () => {
    it("mounts it instead of uploading", async () => {
      const blob = content(`mountable ${Date.now()}`);
      expect(await client.pushBlob("mount/source", blob.digest, blob.bytes)).toBe("uploaded");
      expect(
        await client.pushBlob("mount/target", blob.digest, blob.bytes, {
          mountFrom: "mount/source",
        }),
      ).toBe("mounted");
      expect(await client.hasBlob("mount/target", blob.digest)).toBe(true);
    });

    it("falls back to an upload when the source repository lacks the blob", async () => {
      const blob = content(`not in source ${Date.now()}`);
      expect(
        await client.pushBlob("mount/target2", blob.digest, blob.bytes, {
          mountFrom: "mount/source",
        }),
      ).toBe("uploaded");
      const got = await client.getBlob("mount/target2", blob.digest, 1024);
      expect(Buffer.from(got).equals(Buffer.from(blob.bytes))).toBe(true);
    });
  });

  describe("when the caller's bytes or names are wrong", () => {
    it("refuses to push bytes that do not hash to the digest given", async () => {
      const blob = content("real");
      const err = await rejection(
        client.pushBlob("app/oci", blob.digest, new TextEncoder().encode("fake")),
      );
      expect(isSigferryError(err, "DIGEST_MISMATCH")).toBe(true);
    });

    it("refuses to push a manifest under a digest it does not hash to", async () => {
      const image = makeImage("oci");
      const err = await rejection(
        client.putManifest("app/oci", image.config.digest, image.manifest.bytes, OCI_MANIFEST),
      );
      expect(isSigferryError(err, "DIGEST_MISMATCH")).toBe(true);
    });

    it("rejects repository names and references that could escape the API path", async () => {
      expect(
        isSigferryError(await rejection(client.getManifest("../x", "v1")), "INVALID_REFERENCE"),
      ).toBe(true);
      expect(
        isSigferryError(
          await rejection(client.getManifest("app/oci", "../../x")),
          "INVALID_REFERENCE",
        ),
      ).toBe(true);
    });

    it("refuses a blob larger than the limit", async () => {
      const blob = content(randomText(5000));
      await client.pushBlob("app/limit", blob.digest, blob.bytes);
      const err = await rejection(client.getBlob("app/limit", blob.digest, 100));
      expect(isSigferryError(err, "REGISTRY_PROTOCOL")).toBe(true);
    });
  });
});

function randomText(n: number): string {
  let s = "";
  while (s.length < n) s += Math.random().toString(36).slice(2);
  return s.slice(0, n);
}
