/**
 * Test certificates made with the system `openssl`: a throw-away CA and a server
 * certificate for 127.0.0.1 (IP SAN) for the registry's TLS, and self-signed
 * signing certificates for the token issuer. Everything lives in a caller's temp dir.
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Runs `openssl <args>` in `cwd`; an error carries openssl's stderr. */
export async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await execFileAsync("openssl", args, { cwd });
  } catch (err) {
    const e = err as { code?: string; stderr?: string };
    if (e.code === "ENOENT")
      throw new Error("openssl is not installed: apt-get install -y openssl");
    throw new Error(`openssl ${args[0] ?? ""} failed: ${e.stderr ?? String(err)}`);
  }
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** A CA and a server certificate it issued, as files and PEM. */
export interface ServerTls {
  caFile: string;
  caPem: string;
  certFile: string;
  keyFile: string;
}

/** Makes a CA and a server certificate for `ip` (an IP SAN) in `dir`. */
export async function makeServerTls(dir: string, ip = "127.0.0.1"): Promise<ServerTls> {
  const caFile = join(dir, "ca.pem");
  const caKey = join(dir, "ca.key");
  const certFile = join(dir, "server.pem");
  const keyFile = join(dir, "server.key");
  const csr = join(dir, "server.csr");
  const ext = join(dir, "server.ext");
  await openssl(
    [
      "req",
      "-x509",
      ...EC_KEY,
      "-keyout",
      caKey,
      "-out",
      caFile,
      "-days",
      "2",
      "-subj",
      "/CN=sigferry test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  await openssl(
    ["req", "-new", ...EC_KEY, "-keyout", keyFile, "-out", csr, "-subj", `/CN=${ip}`],
    dir,
  );
  await writeFile(
    ext,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=IP:${ip}`,
      "",
    ].join("\n"),
  );
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      caFile,
      "-CAkey",
      caKey,
      "-CAcreateserial",
      "-out",
      certFile,
      "-days",
      "2",
      "-extfile",
      ext,
    ],
    dir,
  );
  return { caFile, caPem: await readFile(caFile, "utf8"), certFile, keyFile };
}

/** A self-signed certificate and its private key (PEM), e.g. for signing tokens. */
export interface SigningCert {
  certFile: string;
  certPem: string;
  keyPem: string;
}

/** Makes a self-signed ECDSA P-256 certificate named `cn` in `dir`. */
export async function makeSigningCert(dir: string, cn: string): Promise<SigningCert> {
  const certFile = join(dir, "signing.pem");
  const keyFile = join(dir, "signing.key");
  await openssl(
    [
      "req",
      "-x509",
      ...EC_KEY,
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "2",
      "-subj",
      `/CN=${cn}`,
    ],
    dir,
  );
  return {
    certFile,
    certPem: await readFile(certFile, "utf8"),
    keyPem: await readFile(keyFile, "utf8"),
  };
}
