/**
 * Fetching a `.sig` artifact from the real registry, counted at a proxy: a config
 * that is cosign's standard one for its layers is rebuilt, not downloaded; any
 * other config is downloaded; and a caller that must see every blob gets them all.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Digest } from "../../src/core/digest.js";
import { RegistryClient } from "../../src/registry/client.js";
import { OCI_CONFIG, OCI_MANIFEST } from "../../src/registry/types.js";
import { fetchSigArtifact, type BlobCache } from "../../src/sources/releases.js";
import { content, type Content } from "../registry/content.js";
import { startFaultProxy, type FaultProxy } from "../world/fault-proxy.js";
import { startRegistry, type RegistryHandle } from "../world/registry.js";

const REPO = "ocp/release";
const SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";
const ZERO = "0001-01-01T00:00:00Z";

interface Artifact {
  subject: Digest;
  config: Content;
  layers: Content[];
  manifest: Content;
}

/** A `.sig` artifact for a fresh subject, with `config` written from its layers. */
function artifact(n: number, layerCount: number, config: (layers: Digest[]) => string): Artifact {
  const subject = content(`release image ${n}`).digest;
  const layers = Array.from({ length: layerCount }, (_, i) =>
    content(
      JSON.stringify({
        critical: {
          identity: { "docker-reference": "quay.io/openshift-release-dev/ocp-release" },
          image: { "docker-manifest-digest": subject },
          type: "cosign container image signature",
        },
        optional: { n: i },
      }),
    ),
  );
  const configBlob = content(config(layers.map((l) => l.digest)));
  const manifest = content(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, size: configBlob.size, digest: configBlob.digest },
      layers: layers.map((l) => ({
        mediaType: SIMPLE_SIGNING,
        size: l.size,
        digest: l.digest,
        annotations: { "dev.cosignproject.cosign/signature": "c2lnbmF0dXJl" },
      })),
    }),
  );
  return { subject, config: configBlob, layers, manifest };
}

/** The config text cosign (go-containerregistry) writes, spelled out here by hand. */
const cosignConfig = (layers: Digest[]): string =>
  `{"architecture":"","created":"${ZERO}","history":[${layers.map(() => `{"created":"${ZERO}"}`).join(",")}],` +
  `"os":"","rootfs":{"type":"layers","diff_ids":[${layers.map((d) => `"${d}"`).join(",")}]},"config":{}}`;

const oneLayer = artifact(1, 1, cosignConfig);
const twoLayers = artifact(2, 2, cosignConfig);
// Another tool's config for the same kind of artifact: a real creation time.
const otherConfig = artifact(3, 1, (layers) =>
  cosignConfig(layers).replaceAll(ZERO, "2024-02-27T10:00:00Z"),
);

let registry: RegistryHandle;
let proxy: FaultProxy;
let client: RegistryClient;

beforeAll(async () => {
  registry = await startRegistry();
  const direct = new RegistryClient(registry.host, { plainHttp: true });
  try {
    for (const a of [oneLayer, twoLayers, otherConfig]) {
      for (const blob of [a.config, ...a.layers])
        await direct.pushBlob(REPO, blob.digest, blob.bytes);
      await direct.putManifest(
        REPO,
        `${a.subject.replace(":", "-")}.sig`,
        a.manifest.bytes,
        OCI_MANIFEST,
      );
    }
  } finally {
    await direct.close();
  }
  proxy = await startFaultProxy({ target: registry.url });
  client = new RegistryClient(proxy.host, { plainHttp: true });
}, 60_000);

afterAll(async () => {
  await client?.close();
  await proxy?.stop();
  await registry?.stop();
});

/** Fetches `a` and returns its blobs and the blob digests requested from the registry. */
async function fetchCounted(
  a: Artifact,
  deriveConfig: boolean,
): Promise<{ blobs: Map<string, Uint8Array>; fetched: string[] }> {
  const from = proxy.log.length;
  const cache: BlobCache = new Map();
  const got = await fetchSigArtifact(client, REPO, a.subject, cache, { deriveConfig });
  if (!got) throw new Error(`no .sig for ${a.subject}`);
  expect(Buffer.from(got.manifestBytes)).toEqual(Buffer.from(a.manifest.bytes));
  const fetched = proxy.log
    .slice(from)
    .filter((e) => e.method === "GET" && e.url.includes("/blobs/"))
    .map((e) => e.url.slice(e.url.lastIndexOf("/") + 1));
  return { blobs: got.blobs, fetched };
}

function expectAllBlobs(blobs: Map<string, Uint8Array>, a: Artifact): void {
  expect([...blobs.keys()].sort()).toEqual([a.config, ...a.layers].map((b) => b.digest).sort());
  for (const blob of [a.config, ...a.layers]) {
    expect(Buffer.from(blobs.get(blob.digest)!)).toEqual(Buffer.from(blob.bytes));
  }
}

describe("fetchSigArtifact and the config blob", () => {
  it("rebuilds cosign's config of a one-layer artifact and downloads only the layer", async () => {
    const { blobs, fetched } = await fetchCounted(oneLayer, true);
    expect(fetched).toEqual(oneLayer.layers.map((l) => l.digest));
    expectAllBlobs(blobs, oneLayer);
  });

  it("rebuilds it for two layers too", async () => {
    const { blobs, fetched } = await fetchCounted(twoLayers, true);
    expect(fetched).toEqual(twoLayers.layers.map((l) => l.digest));
    expectAllBlobs(blobs, twoLayers);
  });

  it("downloads a config that is not cosign's standard one (its digest differs)", async () => {
    const { blobs, fetched } = await fetchCounted(otherConfig, true);
    expect(fetched).toEqual([
      otherConfig.config.digest,
      ...otherConfig.layers.map((l) => l.digest),
    ]);
    expectAllBlobs(blobs, otherConfig);
  });

  it("downloads every blob when the caller must see them all", async () => {
    const { blobs, fetched } = await fetchCounted(oneLayer, false);
    expect(fetched).toEqual([oneLayer.config.digest, ...oneLayer.layers.map((l) => l.digest)]);
    expectAllBlobs(blobs, oneLayer);
  });
});
