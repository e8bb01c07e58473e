/**
 * Option handling shared by commands: registry connection settings, lists,
 * numbers. Thin helpers that read files named on the command line.
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import { SigferryError } from "../errors.js";
import { describeRetry } from "../net/retry.js";
import { loadCredentials } from "../registry/auth.js";
import { RegistryClient } from "../registry/client.js";
import type { RegistryClientOptions } from "../registry/types.js";
import type { Reporter } from "./output.js";

/** Registry flags common to create, apply and check. */
export interface RegistryFlags {
  plainHttp?: boolean;
  caFile?: string;
  authFile?: string;
  insecureSkipTlsVerify?: boolean;
}

/** Builds registry client options from flags: CA file, credentials lookup, TLS switches. */
export async function registryOptions(
  flags: RegistryFlags,
  reporter: Reporter,
  signal?: AbortSignal,
): Promise<RegistryClientOptions> {
  const options: RegistryClientOptions = { userAgent: "sigferry" };
  if (flags.plainHttp) options.plainHttp = true;
  if (flags.insecureSkipTlsVerify) {
    reporter.warn(
      "TLS verification is OFF (--insecure-skip-tls-verify): the registry's identity is not checked",
    );
    options.insecureSkipTlsVerify = true;
  }
  if (flags.caFile) {
    try {
      options.ca = await readFile(flags.caFile, "utf8");
    } catch (cause) {
      throw new SigferryError(
        "INPUT_READ_FAILED",
        `cannot read --ca-file ${flags.caFile}: ${(cause as Error).message}`,
        {
          cause,
          details: { file: flags.caFile },
        },
      );
    }
  }
  options.credentials = await loadCredentials({
    authFile: flags.authFile,
    env: process.env,
    home: os.homedir(),
  });
  if (signal) options.signal = signal;
  options.onRetry = (event) => reporter.debug(describeRetry(event));
  return options;
}

/** Creates a registry client for `registry` with the given options. */
export function registryClient(registry: string, options: RegistryClientOptions): RegistryClient {
  return new RegistryClient(registry, options);
}

/** Parses a positive integer flag, or throws USAGE naming the flag. */
export function positiveInt(
  value: string | number | undefined,
  flag: string,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new SigferryError(
      "USAGE",
      `${flag} must be a whole number from 1 to 256, not "${String(value)}"`,
    );
  }
  return n;
}

/** Splits repeatable, comma-separable list flags ("a,b" "c") into one list. */
export function splitList(values: string[] | string | undefined): string[] {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  return list
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
}
