/**
 * The keys sigferry trusts without being told: Red Hat's release keys, pinned by
 * fingerprint. Key material fetched from the network is accepted only when it
 * matches one of these pins. Pure: constants and comparisons.
 *
 * Sources: the `release-verification` ConfigMap shipped in every OCP payload
 * (openshift/cluster-update-keys manifests.rhel/) for the OpenPGP keys, and the
 * `openshift` ClusterImagePolicy in the same repository for the sigstore key.
 */

/** Red Hat, Inc. (release key 2) <security@redhat.com>: signs OCP release images (OpenPGP, RSA-4096). */
export const REDHAT_RELEASE_KEY_2 = "567E347AD0044ADE55BA8A5F199E2F91FD431D51";

/** Red Hat, Inc. (beta key 2) <security@redhat.com>: also in the CVO's keyring. */
export const REDHAT_BETA_KEY_2 = "B08B659EE86AF623BC90E8DB938A80CAF21541EB";

/** sha256 of the DER SubjectPublicKeyInfo of Red Hat release key 3 (RSA-4096), the key of the `openshift` ClusterImagePolicy. */
export const REDHAT_SIGSTORE_KEY_ID =
  "ba9d26350d78893a20f337e2153a113108bfcf064085afaee60d446e63405576";

/** Where Red Hat publishes release key 2 (armored; the file may hold more than one key: select by fingerprint). */
export const REDHAT_RELEASE_KEY_2_URL = "https://access.redhat.com/security/data/fd431d51.txt";

/** Alias of REDHAT_RELEASE_KEY_2_URL: the OpenPGP key file sigferry fetches when no --keyring is given. */
export const REDHAT_OPENPGP_KEY_URL = REDHAT_RELEASE_KEY_2_URL;

/** Where Red Hat publishes its sigstore key (release key 3, PEM). */
export const REDHAT_SIGSTORE_KEY_URL = "https://security.access.redhat.com/data/63405576.txt";

/** The OpenPGP fingerprints the CVO's default keyring trusts. */
export const PINNED_OPENPGP_FINGERPRINTS: readonly string[] = [
  REDHAT_RELEASE_KEY_2,
  REDHAT_BETA_KEY_2,
];

/** The sigstore key ids the default `openshift` ClusterImagePolicy trusts. */
export const PINNED_SIGSTORE_KEY_IDS: readonly string[] = [REDHAT_SIGSTORE_KEY_ID];

/** Upper-case hex without spaces, the form gpg prints and the pins use ("567E 347A …" → "567E347A…"). */
export function normalizeFingerprint(fpr: string): string {
  return fpr.replace(/\s+/g, "").toUpperCase();
}

/** True when `fpr` (any case, spaces allowed) is one of Red Hat's pinned OpenPGP release keys. */
export function isPinnedOpenPgp(fpr: string): boolean {
  const normalized = normalizeFingerprint(fpr);
  // A full 40-digit v4 fingerprint only: a short key id can be forged cheaply.
  return /^[0-9A-F]{40}$/.test(normalized) && PINNED_OPENPGP_FINGERPRINTS.includes(normalized);
}

/** True when `id` (sha256 hex of a DER SubjectPublicKeyInfo) is Red Hat's pinned sigstore key. */
export function isPinnedSigstore(id: string): boolean {
  const normalized = id.trim().toLowerCase();
  return /^[0-9a-f]{64}$/.test(normalized) && PINNED_SIGSTORE_KEY_IDS.includes(normalized);
}
