/** Paths tests use: the repository root and the shared real data beside it (read in place, never copied). */
import { fileURLToPath } from "node:url";
import path from "node:path";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const SHARED_DIR = path.resolve(REPO_ROOT, "../shared");
export const REAL_DIR = path.join(SHARED_DIR, "real");

/** A path inside ../shared/real. */
export function real(...parts: string[]): string {
  return path.join(REAL_DIR, ...parts);
}
