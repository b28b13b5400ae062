/** `pullkeeper-node credential-provider` as the kubelet runs it: a child process fed a request on stdin. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '../../../bin/pullkeeper-node.js');

export function runCredentialProvider(
  args: string[],
  stdin: string,
  killAfterMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((ok, fail) => {
    const p = spawn(process.execPath, [BIN, 'credential-provider', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => {
      stdout += c;
    });
    p.stderr.on('data', (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    p.on('error', fail);
    p.on('close', (code) => {
      clearTimeout(timer);
      ok({ code, stdout, stderr });
    });
    p.stdin.end(stdin);
  });
}
