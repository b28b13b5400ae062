/**
 * `make demo` / `npm run demo -- [--once] [--api offline|serve] [--port N]`:
 * pullkeeper's whole job on a local stack of real components, then (without
 * --once) the stack stays up with its status page until Ctrl-C.
 *
 * Exit codes: 0 every use case worked (and, with --once, the stack stopped
 * cleanly); 1 a use case failed (the message says which and why); 2 bad
 * arguments; 3 this machine lacks something the stack needs (the message says
 * how to install it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NodeShell } from './node-shell.js';
import { type Stack, startStack } from './stack.js';
import { DemoError, runTour } from './tour.js';

const USAGE = `Usage: npm run demo -- [--once] [--api offline|serve] [--port N]
  (or: make demo ARGS="--once")

Brings up a local stack (kube-apiserver, registry with two tenants' private
images, 3 SSH nodes, a CI OIDC issuer), writes a matching pullkeeper.yaml,
starts the HTTP API under serverless offline, and shows pullkeeper's use cases.

  --once         run the use cases, stop everything, exit (0 when all worked)
  --api serve    use \`pullkeeper serve\` instead of serverless offline (faster start)
  --port N       the API port (default: a free one)

Exit codes: 0 ok, 1 a use case failed, 2 bad arguments, 3 missing prerequisites.`;

function out(line: string) {
  process.stdout.write(`${line}\n`);
}

function prerequisites(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (network namespaces and runc): run it as root');
  for (const [bin, pkg] of [
    ['docker-registry', 'docker-registry'],
    ['sshd', 'openssh-server'],
    ['runc', 'runc'],
    ['nsenter', 'util-linux'],
  ] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin} || test -x /usr/sbin/${bin}`], { stdio: 'ignore' });
    } catch {
      missing.push(`${bin} (Debian package ${pkg})`);
    }
  }
  const kube = `${process.env.HOME ?? '/root'}/.cache/pullkeeper`;
  if (!existsSync(kube)) missing.push(`kube-apiserver and etcd (built into ${kube})`);
  return missing;
}

async function main(): Promise<number> {
  let values: { once?: boolean; api?: string; port?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        once: { type: 'boolean' },
        api: { type: 'string' },
        port: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    out(USAGE);
    return 0;
  }
  const api = values.api ?? 'offline';
  if (api !== 'offline' && api !== 'serve') {
    process.stderr.write(`demo: --api is offline or serve, not ${api}\n`);
    return 2;
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) {
    process.stderr.write(`demo: --port must be a TCP port number, not ${values.port}\n`);
    return 2;
  }
  const missing = prerequisites();
  if (missing.length) {
    process.stderr.write(
      `demo: this machine lacks:\n- ${missing.join('\n- ')}\nRun \`bash scripts/setup.sh demo\` as root (make demo does), then again.\n`,
    );
    return 3;
  }

  const started = performance.now();
  const stopSignal = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    stopSignal.abort();
  };
  // `on`, not `once`: while this handler is registered, the harness leaves stopping to us (test/harness/proc.ts).
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let stack: Stack | undefined;
  let nodes: NodeShell[] = [];
  let code = 0;
  try {
    out(
      `pullkeeper demo: starting the local stack (api: ${api === 'offline' ? 'serverless offline' : 'pullkeeper serve'})`,
    );
    stack = await startStack({
      api,
      ...(port ? { port } : {}),
      log: out,
      signal: stopSignal.signal,
    });
    const s = stack;
    nodes = s.harness.nodes!.info.nodes.map((n, i) => new NodeShell(s, n.name, i + 1));
    const tour = await runTour({ stack, nodes, out, signal: stopSignal.signal });
    out(
      `\nall use cases ok in ${((performance.now() - started) / 1000).toFixed(1)} s. ` +
        `Status page: ${tour.statusPage.url} (any user name; the password is in ${tour.statusPage.passwordFile})`,
    );
    out(`API: ${stack.base} (POST /v1/refresh, GET /v1/status); config: ${stack.configFile}`);
    if (!values.once && !interrupted) {
      out('The stack stays up; Ctrl-C stops everything.');
      await new Promise<void>((resolve) => stopSignal.signal.addEventListener('abort', () => resolve()));
    }
  } catch (err) {
    code = 1;
    if (interrupted) {
      code = 0;
    } else if (err instanceof DemoError) {
      process.stderr.write(`demo FAILED: ${err.message}\n`);
    } else {
      process.stderr.write(`demo FAILED: ${(err as Error).stack ?? String(err)}\n`);
    }
  } finally {
    out('stopping: pods, pod bridges, API, cluster, registry, nodes');
    for (const n of nodes)
      await n.cleanup().catch((err: Error) => {
        process.stderr.write(`demo: ${err.message}\n`);
        code = code || 1;
      });
    const dir = stack?.dir;
    await stack?.stop().catch((err: Error) => {
      process.stderr.write(`demo: some parts did not stop: ${err.message}\n`);
      code = code || 1;
    });
    if (dir) {
      const left = leftovers(dir);
      if (left.length) {
        process.stderr.write(`demo: left behind: ${left.join(', ')}\n`);
        code = code || 1;
      } else out(`stopped: nothing left behind (${dir} removed, no process or bridge of the demo remains)`);
    }
  }
  return code;
}

/** Processes whose command line names the demo's dir, demo bridges, and the dir itself. */
function leftovers(dir: string): string[] {
  const left: string[] = [];
  if (existsSync(dir)) left.push(dir);
  try {
    const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
    for (const l of ps.split('\n')) if (l.includes(dir)) left.push(`process ${l.trim().split(/\s+/)[0]}`);
  } catch {}
  try {
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
    for (const m of links.matchAll(/^\d+: (pkr-demo\d+)[:@]/gm)) left.push(`bridge ${m[1]}`);
  } catch {}
  return left;
}

process.exitCode = await main();
