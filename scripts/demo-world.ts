/**
 * Starts a local world (upstream registry with releases and .sig tags, two
 * signature stores, an update graph, an empty mirror), prints its addresses
 * and a ready-to-run `sigferry bundle create` command line, and runs until
 * SIGINT/SIGTERM, then stops everything.
 *
 *   node --import tsx scripts/demo-world.ts [--releases 6] [--json]
 *
 * With --json, one JSON object describing the world goes to stdout (for
 * scripts/demo.sh); the human summary goes to stderr either way.
 */
import { parseArgs } from "node:util";
import { startWorld } from "../test/world/index.js";

const { values } = parseArgs({
  options: {
    releases: { type: "string", default: "6" },
    json: { type: "boolean", default: false },
  },
});

// The mirror holds the release images but none of their signatures: what a disconnected
// registry looks like after `oc adm release mirror`, before sigferry.
const world = await startWorld({
  releases: Number(values.releases),
  mirror: true,
  mirrorReleases: true,
});
// The channel's versions: the newest good release is in fast only (not yet promoted to stable).
const stable = world.data.graphs[world.data.channels.stable]!.amd64!.nodes.map((n) => n.version);
const good = world.data.good.map((r) => r.version).filter((v) => stable.includes(v));
const first = good[0]!;
const last = good[good.length - 1]!;
const mirrorRepo = world.mirrorRepo!;

const command = [
  "sigferry bundle create",
  `--release-repo ${world.releaseRepo}`,
  "--plain-http",
  `--graph-url ${world.graphUrl}`,
  `--channel ${world.data.channels.stable}`,
  `--min ${first} --max ${last}`,
  "--arch x86_64 --arch aarch64 --arch multi",
  `--signature-store ${world.stores.primary}`,
  `--signature-store ${world.stores.secondary}`,
  `--keyring ${world.keys.openpgpTrusted}`,
  `--sigstore-key ${world.keys.sigstoreRsa}`,
  `--sigstore-key ${world.keys.sigstoreEcdsa}`,
  "--output ./bundle.tar",
].join(" \\\n    ");

const applyCommand = [
  "sigferry bundle apply ./bundle.tar",
  `--to ${mirrorRepo}`,
  "--plain-http",
  "--skip-cluster --manifests-dir ./manifests",
  `--keyring ${world.keys.openpgpTrusted}`,
  `--sigstore-key ${world.keys.sigstoreRsa}`,
  `--sigstore-key ${world.keys.sigstoreEcdsa}`,
].join(" \\\n    ");

const lines = [
  "sigferry demo world (Ctrl-C to stop)",
  "",
  `  release repo     ${world.releaseRepo}   (plain http)`,
  `  mirror repo      ${mirrorRepo}   (release images, no signatures)`,
  `  primary store    ${world.stores.primary}`,
  `  secondary store  ${world.stores.secondary}`,
  `  update graph     ${world.graphUrl}?channel=${world.data.channels.stable}&arch=amd64`,
  `  OpenPGP key      ${world.keys.openpgpTrusted}`,
  `  sigstore keys    ${world.keys.sigstoreRsa}`,
  `                   ${world.keys.sigstoreEcdsa}`,
  `  good releases    ${world.data.good.map((r) => r.version).join(", ")}`,
  "  bad cases:",
  ...Object.values(world.data.cases).map((c) => `    ${c.version.padEnd(36)} ${c.name}`),
  "",
  "Try:",
  "",
  `  ${command}`,
  "",
  "then, on the disconnected side:",
  "",
  `  ${applyCommand}`,
  "",
  `(world started in ${Math.round(world.timings.total)} ms)`,
];
process.stderr.write(`${lines.join("\n")}\n`);

if (values.json) {
  process.stdout.write(
    `${JSON.stringify({
      releaseRepo: world.releaseRepo,
      mirror: world.mirror!.host,
      mirrorRepo,
      stores: world.stores,
      graphUrl: world.graphUrl,
      channel: world.data.channels.stable,
      keys: world.keys,
      authFile: world.authFile,
      good: world.data.good.map((r) => ({ version: r.version, digests: r.digests })),
      cases: Object.fromEntries(Object.values(world.data.cases).map((c) => [c.name, c.version])),
      command: command.replace(/ \\\n {4}/g, " "),
      applyCommand: applyCommand.replace(/ \\\n {4}/g, " "),
    })}\n`,
  );
}

let stopping = false;
const shutdown = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`\n${signal}: stopping the world\n`);
  world.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
};
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));
