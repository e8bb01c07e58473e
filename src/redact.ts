/**
 * Redaction: the last guard before anything is printed. Secrets loaded from auth
 * files and kubeconfigs are registered here; every printed error, log line and
 * --json document passes through `redact`. Patterns also catch credentials we
 * never registered (Authorization headers, user:pass@ in URLs, JWT-looking tokens).
 */

const registered = new Set<string>();

/** Registers a secret so that it is never printed. Short values are ignored (they would redact noise). */
export function registerSecret(secret: string | undefined): void {
  if (secret === undefined || secret.length < 4) return;
  registered.add(secret);
  // Basic credentials also travel base64-encoded.
  registered.add(Buffer.from(secret).toString("base64"));
}

const PATTERNS: [RegExp, string][] = [
  [/\b(authorization\s*[:=]\s*)("?)(basic|bearer)\s+[^\s",}]+/gi, "$1$2$3 [REDACTED]"],
  [/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, "$1 [REDACTED]"],
  [/(\/\/)[^/\s:@]+:[^/\s@]+@/g, "$1[REDACTED]@"],
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, "[REDACTED-JWT]"],
  [
    /("(?:password|auth|token|identitytoken|access_token|refresh_token|client-key-data)"\s*:\s*")[^"]*"/gi,
    '$1[REDACTED]"',
  ],
];

/** Returns `text` with every registered secret and credential-looking pattern replaced. */
export function redact(text: string): string {
  let out = text;
  // Longest first, so a secret that contains another is removed whole.
  for (const secret of [...registered].sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join("[REDACTED]");
  }
  for (const [re, replacement] of PATTERNS) out = out.replace(re, replacement);
  return out;
}

/** Forgets every registered secret (tests). */
export function clearSecrets(): void {
  registered.clear();
}
