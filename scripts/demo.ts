/**
 * The built-in demo: the whole sigferry story on a local world.
 *
 *   connected side:    bundle create (from the update graph), bundle inspect
 *   carry:             copy the archive and its .sha256 to a "disconnected" directory
 *   disconnected side: bundle verify, (mirror the release images), check (red),
 *                      bundle apply to the mirror and the cluster, check (green)
 *
 * Everything runs on 127.0.0.1: the real CNCF registry (upstream and a TLS +
 * htpasswd mirror), local signature stores and update graph, and the
 * Kubernetes API test server. Each step runs the real CLI (bin/sigferry.js)
 * and prints its command line and output. Run with `bash scripts/demo.sh`.
 */
import { execFile, spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startWorld } from "../test/world/index.js";
import { startKubeApi } from "../test/world/kube-api.js";

const exec = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

function sigferry(args: string[], cwd: string): Promise<number> {
  // One line per flag and its value, so a person can read (and copy) the command.
  const parts: string[] = [];
  for (const a of args) {
    const last = parts.length - 1;
    if (
      !a.startsWith("-") &&
      last >= 0 &&
      parts[last]!.startsWith("--") &&
      !parts[last]!.includes(" ")
    )
      parts[last] += ` ${a}`;
    else parts.push(a);
  }
  const head = parts.findIndex((p) => p.startsWith("-"));
  const shown =
    head < 0
      ? parts.join(" ")
      : `${parts.slice(0, head).join(" ")} \\\n      ${parts.slice(head).join(" \\\n      ")}`;
  process.stdout.write(`\n${bold("$ sigferry")} ${shown}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, "bin/sigferry.js"), ...args], {
      cwd,
      stdio: "inherit",
    });
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}

function step(title: string): void {
  process.stdout.write(`\n${bold(`== ${title}`)}\n`);
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), "sigferry-demo-"));
  const connected = path.join(work, "connected");
  const disconnected = path.join(work, "disconnected");
  await mkdir(connected);
  await mkdir(disconnected);
  step(
    "starting the local world (real registry, signature stores, update graph, mirror, Kubernetes API)",
  );
  const world = await startWorld({
    mirror: { tls: true, htpasswd: { username: "mirror", password: "demo-mirror-password" } },
  });
  const kube = await startKubeApi({ namespaces: ["openshift-config-managed"] });
  const failures: string[] = [];
  try {
    const kubeconfig = await kube.writeKubeconfig(disconnected, { token: kube.adminToken });
    const mirrorRepo = `${world.mirror!.host}/ocp4/openshift-release-dev/ocp-release`;
    const stable = world.data.graphs[world.data.channels.stable]!.amd64!.nodes.map(
      (n) => n.version,
    );
    const good = world.data.good.map((r) => r.version).filter((v) => stable.includes(v));
    const [from, to] = [good[0]!, good[good.length - 1]!];
    process.stdout.write(
      `upstream ${world.releaseRepo}, mirror ${mirrorRepo} (TLS + htpasswd), cluster ${kube.url}\n` +
        `channel ${world.data.channels.stable}: ${stable.join(", ")}\n`,
    );
    const expect = (code: number, want: number, what: string): void => {
      if (code !== want) failures.push(`${what}: exit ${code}, expected ${want}`);
    };

    step(`connected side: collect the signatures for the upgrade path ${from} -> ${to}`);
    const archive = "sigs.tar.gz";
    const keys = [
      "--keyring",
      world.keys.openpgpTrusted,
      "--sigstore-key",
      world.keys.sigstoreRsa,
      "--sigstore-key",
      world.keys.sigstoreEcdsa,
    ];
    const select = [
      "--graph-url",
      world.graphUrl,
      "--channel",
      world.data.channels.stable,
      "--min",
      from,
      "--max",
      to,
      "--shortest-path",
      "--arch",
      "x86_64",
      "--arch",
      "multi",
    ];
    const source = [
      "--release-repo",
      world.releaseRepo,
      "--plain-http",
      "--signature-store",
      world.stores.primary,
      "--signature-store",
      world.stores.secondary,
    ];
    expect(
      await sigferry(["bundle", "create", ...select, ...source, "--dry-run"], connected),
      0,
      "create --dry-run",
    );
    expect(
      await sigferry(
        ["bundle", "create", ...select, ...source, ...keys, "--output", archive],
        connected,
      ),
      0,
      "create",
    );
    expect(await sigferry(["bundle", "inspect", archive], connected), 0, "inspect");

    step("carry: the archive and its .sha256 sidecar cross the gap");
    for (const f of [archive, `${archive}.sha256`])
      await copyFile(path.join(connected, f), path.join(disconnected, f));
    process.stdout.write(`copied ${archive} and ${archive}.sha256 to ${disconnected}\n`);
    const { stdout: sum } = await exec("sha256sum", ["-c", `${archive}.sha256`], {
      cwd: disconnected,
    });
    process.stdout.write(`$ sha256sum -c ${archive}.sha256\n${sum}`);

    step("disconnected side: verify, offline, against the keys you trust");
    expect(
      await sigferry(
        [
          "bundle",
          "verify",
          archive,
          "--keyring",
          world.keys.openpgpTrusted,
          "--sigstore-key",
          world.keys.sigstoreRsa,
          "--sigstore-key",
          world.keys.sigstoreEcdsa,
        ],
        disconnected,
      ),
      0,
      "verify",
    );

    step(
      "the mirror holds the release images (as after `oc adm release mirror`), but no signatures",
    );
    const certDir = path.join(disconnected, "mirror-certs");
    await mkdir(certDir);
    await copyFile(world.mirror!.caFile!, path.join(certDir, "ca.crt"));
    for (const v of [from, to]) {
      for (const arch of ["x86_64", "multi"]) {
        await exec("skopeo", [
          "copy",
          "--all",
          "--preserve-digests",
          "--src-tls-verify=false",
          `--dest-cert-dir=${certDir}`,
          "--dest-creds=mirror:demo-mirror-password",
          `docker://${world.releaseRepo}:${v}-${arch}`,
          `docker://${mirrorRepo}:${v}-${arch}`,
        ]);
      }
    }
    const connection = [
      "--to",
      mirrorRepo,
      "--ca-file",
      world.mirror!.caFile!,
      "--auth-file",
      world.authFile,
      "--kubeconfig",
      kubeconfig,
    ];
    const trust = [
      "--keyring",
      world.keys.openpgpTrusted,
      "--sigstore-key",
      world.keys.sigstoreRsa,
      "--sigstore-key",
      world.keys.sigstoreEcdsa,
    ];
    expect(
      await sigferry(["check", "--bundle", archive, ...connection, ...trust], disconnected),
      7,
      "check before apply",
    );

    step("apply: push the .sig artifacts to the mirror, server-side-apply the ConfigMaps");
    expect(
      await sigferry(
        ["bundle", "apply", archive, ...connection, ...trust, "--manifests-dir", "manifests"],
        disconnected,
      ),
      0,
      "apply",
    );
    expect(
      await sigferry(
        ["bundle", "apply", archive, ...connection, ...trust, "--quiet"],
        disconnected,
      ),
      0,
      "apply again",
    );
    expect(
      await sigferry(["check", "--bundle", archive, ...connection, ...trust], disconnected),
      0,
      "check after apply",
    );

    step("on a real cluster");
    process.stdout.write(
      [
        "  connected:     sigferry bundle create --channel stable-4.21 --min 4.21.3 --max 4.21.5 --shortest-path \\",
        "                   --arch x86_64 --arch multi -o sigs.tar.gz",
        "                 (Red Hat's published keys are fetched and accepted only if they match the pinned fingerprints)",
        "  disconnected:  sigferry bundle verify sigs.tar.gz",
        "                 sigferry bundle apply sigs.tar.gz --to mirror.example.com:8443/ocp4/openshift-release-dev/ocp-release",
        "                 sigferry check --bundle sigs.tar.gz --to mirror.example.com:8443/ocp4/openshift-release-dev/ocp-release",
        "  without API access from the jump host: --skip-cluster --manifests-dir out/ and `oc apply -k out/`",
        "",
      ].join("\n"),
    );
  } finally {
    await kube.stop();
    await world.stop();
    await rm(work, { recursive: true, force: true });
  }
  if (failures.length > 0) {
    process.stderr.write(`demo FAILED:\n  ${failures.join("\n  ")}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(bold("demo complete: every step did what it should\n"));
  }
}

await main();
