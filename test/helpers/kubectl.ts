/** Runs the real kubectl (/usr/bin/kubectl) against a test API server, isolated from the user's ~/.kube. */
import { execFile } from "node:child_process";

/** What one kubectl run printed, and how it ended. */
export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `kubectl --kubeconfig <kubeconfig> --cache-dir <home>/cache <args>`
 * with HOME pointing at `home` and no KUBECONFIG, so nothing outside the test
 * is read or written. Never throws on a non-zero exit.
 */
export function kubectl(
  kubeconfig: string,
  home: string,
  args: string[],
  input?: string,
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "kubectl",
      [
        "--kubeconfig",
        kubeconfig,
        "--cache-dir",
        `${home}/cache`,
        "--request-timeout=20s",
        ...args,
      ],
      {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home },
        timeout: 60_000,
        maxBuffer: 32 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        // A number: kubectl's exit status. Anything else: kubectl did not run or was killed.
        if (typeof err.code === "number") resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`kubectl did not run: ${err.message}`, { cause: err }));
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}
