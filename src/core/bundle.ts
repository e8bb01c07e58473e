/**
 * Assembles a bundle from verified material: the index, the OCI layout of
 * `.sig` artifacts, the ConfigMaps, REPORT.md and the checksum list, as archive members.
 * Plain data in, plain data out (docs/bundle-format.md is the spec); the member
 * bytes go to a MemberSink, in memory unless the caller passes a spool.
 */
import { createHash } from "node:crypto";
import {
  BUNDLE_FORMAT,
  BUNDLE_FORMAT_VERSION,
  MEMBER,
  type BundleIndex,
  type BundleRelease,
  type ConfigMapEntry,
  type MissingSignature,
  type OpenPgpSignatureEntry,
  type RejectedSignature,
  type SigstoreArtifactEntry,
  type SigstoreLayerEntry,
} from "./bundle-index.js";
import { checksumLines } from "./checksums.js";
import { jsonChunks } from "./json-stream.js";
import { utf8Pieces } from "./pieces.js";
import { digestDashed, digestHex, sigTag, storeDirName, type Digest } from "./digest.js";
import {
  SIGNATURE_NAMESPACE,
  configMapToYaml,
  signatureConfigMap,
  signatureConfigMapYaml,
} from "./manifests.js";
import { reportParts } from "./report.js";
import { compareVersions } from "./version.js";
import { flat } from "./flat.js";

/** A verified OpenPGP signature ready to be carried. */
export interface CollectedOpenPgp {
  digest: Digest;
  bytes: Uint8Array;
  identity: string;
  signer: string;
  source: string;
}

/** A verified cosign `.sig` artifact ready to be carried, with every blob it names. */
export interface CollectedSigstore {
  digest: Digest;
  manifestBytes: Uint8Array;
  manifestDigest: Digest;
  mediaType: string;
  config: { digest: Digest; mediaType: string; size: number };
  layers: SigstoreLayerEntry[];
  /** config and layer blobs by digest. */
  blobs: Map<string, Uint8Array>;
  source: string;
}

/** Everything `bundle create` gathered, in any order. */
export interface AssembleInput {
  toolVersion: string;
  createdAt: Date;
  selection: Record<string, unknown>;
  sources: { releaseRepo: string; signatureStores: string[] };
  required: ("openpgp" | "sigstore")[];
  releases: BundleRelease[];
  openpgp: CollectedOpenPgp[];
  sigstore: CollectedSigstore[];
  keys: {
    openpgp: { fingerprint: string; userIds: string[]; armored: string }[];
    sigstore: { id: string; algorithm: string; pem: string }[];
  };
  rejected: RejectedSignature[];
  missing: MissingSignature[];
}

/** One file of the archive. */
export interface BundleMember {
  path: string;
  data: Uint8Array;
  size: number;
  /** The bytes in pieces, read as asked for when the sink can (a large member need not be whole in memory). */
  chunks?: (chunkSize: number) => Iterable<Uint8Array>;
}

/** The assembled bundle. */
export interface AssembledBundle {
  index: BundleIndex;
  /** In path order; each member's `data` is read from the sink when asked for. */
  members: BundleMember[];
}

/**
 * Where assembleBundle keeps member bytes while it builds the rest. A
 * MemberStore (src/archive/member-store.ts) qualifies: `bundle create` passes
 * one so that the members (about 15 MB at 2000 releases) sit in a spool file
 * rather than in memory until the archive is written.
 */
export interface MemberSink {
  /** Keeps a new member; returns the sha256 hex of its bytes. */
  add(path: string, data: Uint8Array): string;
  /** Keeps a new member given in parts, in order; returns the sha256 hex of its bytes. */
  addParts(path: string, parts: Iterable<Uint8Array>): string;
  sha256(path: string): string | undefined;
  sizeOf(path: string): number | undefined;
  get(path: string): Uint8Array | undefined;
  /** A member's bytes in pieces, read as asked for (a spool has it; memory needs not). */
  chunks?(path: string, chunkSize: number): Iterable<Uint8Array>;
  keys(): Iterable<string>;
}

/** The default sink: a map in memory. */
class MemoryMembers implements MemberSink {
  readonly #members = new Map<string, { data: Uint8Array; sha256: string }>();

  add(path: string, data: Uint8Array): string {
    const sha256 = sha256Hex(data);
    this.#members.set(path, { data, sha256 });
    return sha256;
  }

  addParts(path: string, parts: Iterable<Uint8Array>): string {
    return this.add(path, Buffer.concat([...parts]));
  }

  sha256(path: string): string | undefined {
    return this.#members.get(path)?.sha256;
  }

  sizeOf(path: string): number | undefined {
    return this.#members.get(path)?.data.byteLength;
  }

  get(path: string): Uint8Array | undefined {
    return this.#members.get(path)?.data;
  }

  keys(): Iterable<string> {
    return this.#members.keys();
  }
}

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const sha256Hex = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");
const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Path of the n-th carried OpenPGP signature of a digest (store layout, n from 1). */
export function openpgpMemberPath(digest: Digest, n: number): string {
  return `${MEMBER.openpgpDir}${storeDirName(digest)}/signature-${n}`;
}

/** Path of a blob in the bundle's OCI layout. */
export function blobMemberPath(digest: Digest): string {
  return `${MEMBER.sigstoreLayout}blobs/sha256/${digestHex(digest)}`;
}

/** A blob's member path as one flat string: the sink keeps it for the whole run. */
const flatBlobPath = (digest: Digest): string => flat(blobMemberPath(digest));

/** Path of the ConfigMap of a release digest. */
export function configMapMemberPath(name: string): string {
  return `${MEMBER.configMapsDir}${name}.yaml`;
}

/** Orders releases by version (semver), then arch, then digest, so the index is stable. */
export function compareReleases(a: BundleRelease, b: BundleRelease): number {
  if (a.version !== undefined && b.version !== undefined) {
    const v = compareVersions(a.version, b.version);
    if (v !== 0) return v;
  } else if (a.version !== b.version) {
    return a.version === undefined ? 1 : -1;
  }
  return byString(a.arch, b.arch) || byString(a.digest, b.digest);
}

/** What a bundle records besides its signatures and artifacts. */
export type AssembleRest = Omit<AssembleInput, "openpgp" | "sigstore">;

/**
 * Builds a bundle as verified material arrives: each release's signatures,
 * ConfigMap and `.sig` blobs go to the sink when they are added, and only
 * their index entries stay in memory. `bundle create` adds a release's
 * material as soon as its fetch finishes, so the fetched bytes are not all
 * held until the end (at 2000 releases, they and the work of turning them
 * into members at once set the peak memory). The archive's bytes do not
 * depend on the order material is added in: `finish` sorts every list.
 */
export class BundleAssembler {
  readonly #sink: MemberSink;
  readonly #openpgp = new Map<
    Digest,
    { entries: OpenPgpSignatureEntry[]; configMap: ConfigMapEntry }
  >();
  readonly #sigstore = new Map<Digest, { entry: SigstoreArtifactEntry; layout: object }>();

  constructor(sink: MemberSink = new MemoryMembers()) {
    this.#sink = sink;
  }

  #put(path: string, data: Uint8Array): void {
    const existing = this.#sink.sha256(path);
    if (existing === undefined) {
      this.#sink.add(path, data);
      return;
    }
    // The same blob may be named by several artifacts; different bytes under one name is a bug.
    if (existing !== sha256Hex(data)) {
      throw new Error(`internal: two different contents for archive member ${path}`);
    }
  }

  /**
   * The verified OpenPGP signatures of one image digest, in the order found:
   * identical bytes (two stores serve the same file) are kept once, numbered 1..n,
   * and the release's ConfigMap is written with them. Once per digest.
   */
  addOpenPgp(digest: Digest, found: readonly CollectedOpenPgp[]): void {
    if (this.#openpgp.has(digest))
      throw new Error(`internal: OpenPGP signatures of ${digest} added twice`);
    const sigs: CollectedOpenPgp[] = [];
    for (const sig of found) {
      if (sig.digest !== digest)
        throw new Error(`internal: a signature of ${sig.digest} added for ${digest}`);
      if (!sigs.some((s) => Buffer.from(s.bytes).equals(Buffer.from(sig.bytes)))) sigs.push(sig);
    }
    if (sigs.length === 0) return;
    const entries = sigs.map((sig, i): OpenPgpSignatureEntry => {
      const path = flat(openpgpMemberPath(digest, i + 1));
      this.#put(path, sig.bytes);
      return { digest, path, identity: sig.identity, signer: sig.signer, source: flat(sig.source) };
    });
    const cm = signatureConfigMap(
      digest,
      sigs.map((s) => s.bytes),
    );
    const path = flat(configMapMemberPath(cm.metadata.name));
    this.#put(path, utf8(signatureConfigMapYaml(cm) ?? configMapToYaml(cm)));
    this.#openpgp.set(digest, {
      entries,
      configMap: {
        name: flat(cm.metadata.name),
        namespace: cm.metadata.namespace ?? SIGNATURE_NAMESPACE,
        path,
        digest,
        keys: Object.keys(cm.binaryData ?? {}),
      },
    });
  }

  /** A verified `.sig` artifact: its manifest and every blob it names go to the sink. Once per digest. */
  addSigstore(art: CollectedSigstore): void {
    if (this.#sigstore.has(art.digest))
      throw new Error(`internal: the .sig of ${art.digest} added twice`);
    const tag = flat(sigTag(art.digest));
    this.#put(flatBlobPath(art.manifestDigest), art.manifestBytes);
    for (const [digest, bytes] of [...art.blobs.entries()].sort(([a], [b]) => byString(a, b))) {
      this.#put(flatBlobPath(digest as Digest), bytes);
    }
    this.#sigstore.set(art.digest, {
      entry: {
        digest: art.digest,
        tag,
        manifest: {
          digest: art.manifestDigest,
          mediaType: art.mediaType,
          size: art.manifestBytes.length,
        },
        config: art.config,
        layers: art.layers,
        source: flat(art.source),
      },
      layout: {
        mediaType: art.mediaType,
        digest: art.manifestDigest,
        size: art.manifestBytes.length,
        annotations: { "org.opencontainers.image.ref.name": tag },
      },
    });
  }

  /** Writes the keys, the OCI layout, index.json, REPORT.md and the checksum list (last), and lists every member. */
  finish(input: AssembleRest): AssembledBundle {
    const sink = this.#sink;
    const openpgp: OpenPgpSignatureEntry[] = [];
    const configMaps: ConfigMapEntry[] = [];
    for (const digest of [...this.#openpgp.keys()].sort(byString)) {
      const { entries, configMap } = this.#openpgp.get(digest)!;
      openpgp.push(...entries);
      configMaps.push(configMap);
    }
    this.#openpgp.clear();

    // Sigstore: an OCI image layout (image-spec image-layout.md) whose index names every
    // `.sig` manifest by its tag, so `skopeo copy oci:<dir>:sha256-<hex>.sig …` also works.
    const sigstore: SigstoreArtifactEntry[] = [];
    const layoutManifests: object[] = [];
    for (const digest of [...this.#sigstore.keys()].sort(byString)) {
      const { entry, layout } = this.#sigstore.get(digest)!;
      sigstore.push(entry);
      layoutManifests.push(layout);
    }
    this.#sigstore.clear();
    if (sigstore.length > 0) {
      this.#put(
        `${MEMBER.sigstoreLayout}oci-layout`,
        utf8(`${JSON.stringify({ imageLayoutVersion: "1.0.0" })}\n`),
      );
      const layoutIndex = {
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: layoutManifests,
      };
      // 0.7 MB at 2000 releases: in pieces, like index.json.
      sink.addParts(`${MEMBER.sigstoreLayout}index.json`, jsonParts(layoutIndex));
      layoutManifests.length = 0;
    }

    // Keys used to verify, carried for reference only: a reader trusts them only by fingerprint.
    const openpgpKeys = [...input.keys.openpgp]
      .sort((a, b) => byString(a.fingerprint, b.fingerprint))
      .map((k) => {
        const path = `${MEMBER.openpgpKeysDir}${k.fingerprint}.asc`;
        this.#put(path, utf8(k.armored.endsWith("\n") ? k.armored : `${k.armored}\n`));
        return { fingerprint: k.fingerprint, path, userIds: k.userIds };
      });
    const sigstoreKeys = [...input.keys.sigstore]
      .sort((a, b) => byString(a.id, b.id))
      .map((k) => {
        const path = `${MEMBER.sigstoreKeysDir}${k.id}.pem`;
        this.#put(path, utf8(k.pem.endsWith("\n") ? k.pem : `${k.pem}\n`));
        return { id: k.id, path, algorithm: k.algorithm };
      });

    const index: BundleIndex = {
      format: BUNDLE_FORMAT,
      formatVersion: BUNDLE_FORMAT_VERSION,
      tool: { name: "sigferry", version: input.toolVersion },
      createdAt: new Date(Math.floor(input.createdAt.getTime() / 1000) * 1000).toISOString(),
      selection: input.selection,
      sources: input.sources,
      required: [...input.required].sort(byString),
      releases: [...input.releases].sort(compareReleases),
      openpgp,
      sigstore,
      configMaps,
      keys: { openpgp: openpgpKeys, sigstore: sigstoreKeys },
      rejected: [...input.rejected].sort(
        (a, b) =>
          byString(a.digest, b.digest) || byString(a.source, b.source) || byString(a.code, b.code),
      ),
      missing: [...input.missing].sort(
        (a, b) => byString(a.digest, b.digest) || byString(a.kind, b.kind),
      ),
    };
    // Piece by piece: at 2000 releases the index is 5 MB of text, and whole (as
    // a string and again as bytes) it set the peak memory of `bundle create`.
    sink.addParts(MEMBER.index, jsonParts(index));
    // The change-ticket summary, generated from the index alone so a reader can regenerate and compare it.
    sink.addParts(MEMBER.report, reportParts(index));

    sink.addParts(
      MEMBER.checksums,
      utf8Pieces(
        checksumLines([...sink.keys()].map((path) => ({ path, sha256: sink.sha256(path)! }))),
      ),
    );

    const list: BundleMember[] = [...sink.keys()]
      .sort(byString)
      .map((path) => new SinkMember(path, sink.sizeOf(path)!, sink));
    return { index, members: list };
  }
}

/** Builds the index and every archive member (checksums last) from verified material, into `sink`. */
export function assembleBundle(
  input: AssembleInput,
  sink: MemberSink = new MemoryMembers(),
): AssembledBundle {
  const assembler = new BundleAssembler(sink);
  const byDigest = new Map<Digest, CollectedOpenPgp[]>();
  for (const sig of input.openpgp) {
    const list = byDigest.get(sig.digest) ?? [];
    list.push(sig);
    byDigest.set(sig.digest, list);
  }
  for (const [digest, sigs] of byDigest) assembler.addOpenPgp(digest, sigs);
  for (const art of input.sigstore) assembler.addSigstore(art);
  return assembler.finish(input);
}

/**
 * A member whose bytes stay in the sink until the writer asks, so that a
 * spool's members are in memory one at a time. A class rather than an object
 * with its own getter and closure: at 2000 releases there are 10 700 of them,
 * and the closures came to 4.6 MiB while the archive was written.
 */
class SinkMember implements BundleMember {
  readonly path: string;
  readonly size: number;
  readonly #sink: MemberSink;

  constructor(path: string, size: number, sink: MemberSink) {
    this.path = path;
    this.size = size;
    this.#sink = sink;
  }

  get data(): Uint8Array {
    return this.#sink.get(this.path)!;
  }

  chunks(chunkSize: number): Iterable<Uint8Array> {
    return this.#sink.chunks !== undefined ? this.#sink.chunks(this.path, chunkSize) : [this.data];
  }
}

/** The ConfigMap name sigferry (like `oc adm release mirror`) gives a release digest. */
export function configMapName(digest: Digest): string {
  return digestDashed(digest);
}

/** A JSON member as UTF-8 pieces: JSON.stringify(value, null, 2) and a newline, never whole. */
function jsonParts(value: unknown): Generator<Uint8Array> {
  function* texts(): Generator<string> {
    // jsonChunks cuts between members, never inside a string.
    yield* jsonChunks(value);
    yield "\n";
  }
  return utf8Pieces(texts());
}
