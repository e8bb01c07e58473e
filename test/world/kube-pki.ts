/**
 * A throwaway PKI for the test Kubernetes API server, made with the openssl CLI
 * in a temporary directory: a self-signed CA, a server certificate for
 * 127.0.0.1/localhost, and client certificates whose subject carries the user
 * name (CN) and groups (O), as the Kubernetes x509 authenticator reads them
 * (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#x509-client-certificates).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** One key pair with its certificate, as PEM text and as files. */
export interface IssuedCert {
  certPem: string;
  keyPem: string;
  certFile: string;
  keyFile: string;
}

/** The CA and the server certificate, plus a way to issue client certificates. */
export interface KubePki {
  dir: string;
  caFile: string;
  caPem: string;
  server: IssuedCert;
  issueClient(name: string, user: string, groups: string[]): Promise<IssuedCert>;
  remove(): Promise<void>;
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  await run("openssl", args, { cwd });
}

async function issue(
  dir: string,
  name: string,
  subject: string,
  extensions: string,
): Promise<IssuedCert> {
  const keyFile = path.join(dir, `${name}.key`);
  const csrFile = path.join(dir, `${name}.csr`);
  const certFile = path.join(dir, `${name}.crt`);
  const extFile = path.join(dir, `${name}.ext`);
  await openssl(dir, [
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    csrFile,
    "-subj",
    subject,
  ]);
  await writeFile(extFile, extensions);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    csrFile,
    "-CA",
    path.join(dir, "ca.crt"),
    "-CAkey",
    path.join(dir, "ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-sha256",
    "-extfile",
    extFile,
    "-out",
    certFile,
  ]);
  return {
    certPem: await readFile(certFile, "utf8"),
    keyPem: await readFile(keyFile, "utf8"),
    certFile,
    keyFile,
  };
}

/** Creates a CA and a server certificate valid for 127.0.0.1 and localhost. */
export async function createKubePki(): Promise<KubePki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-kube-pki-"));
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=sigferry-test-kube-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const server = await issue(
    dir,
    "server",
    "/CN=kube-apiserver",
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "",
    ].join("\n"),
  );
  const caFile = path.join(dir, "ca.crt");
  return {
    dir,
    caFile,
    caPem: await readFile(caFile, "utf8"),
    server,
    issueClient: (name, user, groups) =>
      issue(
        dir,
        name,
        `/CN=${user}${groups.map((g) => `/O=${g}`).join("")}`,
        [
          "basicConstraints=CA:FALSE",
          "keyUsage=critical,digitalSignature",
          "extendedKeyUsage=clientAuth",
          "",
        ].join("\n"),
      ),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
