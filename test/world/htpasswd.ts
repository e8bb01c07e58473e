/**
 * htpasswd lines for the registry's htpasswd auth. distribution accepts only
 * bcrypt ($2a$/$2b$/$2y$) entries. node:crypto has no bcrypt and `openssl passwd`
 * does not do it, but Debian's libcrypt (libxcrypt) does, and perl (always
 * present on Debian: perl-base is Essential) exposes it as `crypt`. apache2-utils'
 * `htpasswd -nbB` is the fallback.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

// bcrypt's own base64 alphabet (not RFC 4648).
const BCRYPT_B64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BCRYPT_HASH = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

function bcryptSalt(cost: number): string {
  const bytes = randomBytes(22);
  let salt = "";
  for (let i = 0; i < 21; i++) salt += BCRYPT_B64[bytes[i]! % 64];
  // The 22nd character carries only 2 bits of the 128-bit salt: keep it canonical.
  salt += ".Oeu"[bytes[21]! % 4];
  return `$2b$${String(cost).padStart(2, "0")}$${salt}`;
}

/** A bcrypt hash of `password` (cost 5: fast, tests only). */
export async function bcryptHash(password: string, cost = 5): Promise<string> {
  try {
    // The password travels as an argument, never through a shell.
    const { stdout } = await execFileAsync("perl", [
      "-e",
      "print crypt($ARGV[0], $ARGV[1])",
      password,
      bcryptSalt(cost),
    ]);
    if (BCRYPT_HASH.test(stdout)) return stdout;
  } catch {
    // no perl: try htpasswd below
  }
  try {
    const { stdout } = await execFileAsync("htpasswd", ["-nbB", "-C", String(cost), "x", password]);
    const hash = stdout.trim().slice("x:".length);
    if (BCRYPT_HASH.test(hash)) return hash;
  } catch {
    // fall through
  }
  throw new Error(
    "cannot make a bcrypt hash: neither perl's crypt (libxcrypt) nor htpasswd is available; apt-get install -y apache2-utils",
  );
}

/** One `user:bcrypt-hash` line of an htpasswd file. */
export async function htpasswdLine(username: string, password: string): Promise<string> {
  return `${username}:${await bcryptHash(password)}`;
}
