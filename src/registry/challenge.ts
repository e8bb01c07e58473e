/**
 * `WWW-Authenticate` challenges (RFC 7235 section 4.1) as registries send them:
 * `Bearer realm="https://auth/token",service="reg",scope="repository:a/b:pull"`
 * (Docker token authentication specification) or `Basic realm="reg"`. Pure.
 *
 *   WWW-Authenticate = 1#challenge
 *   challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param       = token BWS "=" BWS ( token / quoted-string )
 */

/** One challenge: the scheme in lowercase, its parameters (names lowercase), or a token68. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
  token68?: string;
}

// RFC 7230 section 3.2.6: tchar.
const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const TOKEN68 = /[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))/y;

/** Parses every challenge in a WWW-Authenticate value (several headers may be joined with ", "). */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  const n = header.length;
  let i = 0;
  let current: Challenge | undefined;

  const skipWs = (): void => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    const m = re.exec(header);
    if (!m) return undefined;
    i = re.lastIndex;
    return m[0];
  };
  const quoted = (): string => {
    // Opening quote at header[i]; a backslash escapes the next character.
    let value = "";
    i++;
    while (i < n && header[i] !== '"') {
      if (header[i] === "\\" && i + 1 < n) i++;
      value += header[i];
      i++;
    }
    i++;
    return value;
  };

  while (i < n) {
    skipWs();
    if (i >= n) break;
    if (header[i] === ",") {
      i++;
      continue;
    }
    const token = match(TOKEN);
    if (token === undefined) {
      i++; // not a token character: skip it rather than loop
      continue;
    }
    skipWs();
    if (current && header[i] === "=") {
      i++;
      skipWs();
      const value = header[i] === '"' ? quoted() : (match(TOKEN) ?? "");
      current.params[token.toLowerCase()] = value;
      continue;
    }
    current = { scheme: token.toLowerCase(), params: {} };
    out.push(current);
    const t68 = match(TOKEN68);
    if (t68 !== undefined) {
      current.token68 = t68;
      current = undefined;
    }
  }
  return out;
}

/** The challenge a registry client should answer: Bearer if offered, else Basic. */
export function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return (
    challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic")
  );
}

/**
 * The scopes a Bearer challenge asks for: distribution joins several with spaces
 * (`scope="repository:a:pull repository:b:pull,push"`).
 */
export function challengeScopes(challenge: Challenge): string[] {
  const scope = challenge.params.scope;
  return scope ? scope.split(" ").filter((s) => s !== "") : [];
}
