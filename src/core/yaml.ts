/**
 * The YAML library, loaded on first use rather than at start: its modules take
 * about 28 ms to evaluate, and most runs of `bundle create` and `bundle apply`
 * never need it (sigferry writes and checks its signature ConfigMaps directly,
 * src/core/manifests.ts). `yaml` ships CommonJS for Node, so a synchronous
 * require returns the same instance an import would.
 */
import { createRequire } from "node:module";
import type * as Yaml from "yaml";

let lib: typeof Yaml | undefined;

/** The `yaml` package, loaded once. */
export function yamlLib(): typeof Yaml {
  return (lib ??= createRequire(import.meta.url)("yaml") as typeof Yaml);
}
