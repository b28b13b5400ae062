/** Paged lists against a small in-process server: every page is read, and an expired continue token relists. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { KubeApiError, KubeClient } from './client.js';
import { LIST_PAGE, listAll } from './resources.js';

const servers: Server[] = [];
const clients: KubeClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A collection of `total` items served in pages; `expire(n)` answers 410 to the nth continued request. */
async function pagedServer(total: number, expire?: (n: number) => boolean) {
  const seen: string[] = [];
  let continued = 0;
  const server = createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    seen.push(u.search);
    const limit = Number(u.searchParams.get('limit'));
    const from = Number(u.searchParams.get('continue') ?? 0);
    res.setHeader('content-type', 'application/json');
    if (u.searchParams.has('continue') && expire?.(++continued)) {
      res.writeHead(410);
      res.end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'too old' }));
      return;
    }
    const items = Array.from({ length: Math.min(limit, total - from) }, (_, i) => ({ n: from + i }));
    const next = from + items.length < total ? String(from + items.length) : undefined;
    res.end(JSON.stringify({ metadata: next ? { continue: next } : {}, items }));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kube = new KubeClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  clients.push(kube);
  return { kube, seen };
}

describe('listAll', () => {
  test('reads every page with limit and continue', async () => {
    const { kube, seen } = await pagedServer(LIST_PAGE * 2 + 7);
    const items = await listAll<{ n: number }>(kube, '/api/v1/namespaces', { labelSelector: 'a=b' });
    assert.equal(items.length, LIST_PAGE * 2 + 7);
    assert.deepEqual(
      items.map((i) => i.n),
      items.map((_, i) => i),
    );
    assert.equal(seen.length, 3);
    assert.ok(seen.every((q) => q.includes(`limit=${LIST_PAGE}`) && q.includes('labelSelector=a%3Db')));
  });

  test('an expired continue token (410) lists again from the first page', async () => {
    const { kube, seen } = await pagedServer(LIST_PAGE + 1, (n) => n === 1);
    const items = await listAll<{ n: number }>(kube, '/api/v1/secrets', {});
    assert.equal(items.length, LIST_PAGE + 1);
    // first page, 410, then first and second page again
    assert.equal(seen.length, 4);
    assert.ok(!seen[2]!.includes('continue'));
  });

  test('a token that keeps expiring fails with the 410 after three tries', async () => {
    const { kube } = await pagedServer(LIST_PAGE + 1, () => true);
    await assert.rejects(
      listAll(kube, '/api/v1/secrets', {}),
      (e) => e instanceof KubeApiError && e.status === 410,
    );
  });
});
