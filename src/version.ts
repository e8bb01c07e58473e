/** The tool's version, read once from package.json (dist/ and src/ both sit one level below it). */
import { readFileSync } from "node:fs";
import { BUNDLE_FORMAT_VERSION } from "./core/bundle-index.js";

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

/** sigferry's version (package.json). */
export const TOOL_VERSION = readVersion();

/** The line `sigferry --version` prints. */
export const VERSION_LINE = `sigferry ${TOOL_VERSION} (bundle format ${BUNDLE_FORMAT_VERSION})`;
