import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DockerConfig } from '../core/docker-config.js';
import {
  backupPath,
  inspectExisting,
  type NodePlan,
  parseSidecar,
  planNode,
  renderSidecar,
  sha256hex,
  sidecarPath,
} from './plan.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const buf = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
const desired: DockerConfig = { auths: { 'a.io': { username: 'u', password: 'p' } } };
const OURS = { username: 'u', password: 'p', auth: b64('u:p') };

/** Plan, then the parsed content (when any) for assertions. */
function plan(
  existing: Buffer | undefined,
  opts: { managed?: string[]; replace?: boolean; want?: DockerConfig } = {},
) {
  const p = planNode({
    existing,
    sidecar: opts.managed ? { version: 1, managedKeys: opts.managed, sha256: 'x' } : undefined,
    desired: opts.want ?? desired,
    replaceMalformed: opts.replace ?? false,
  });
  return { p, json: 'content' in p ? JSON.parse(p.content) : undefined };
}

describe('planNode', () => {
  const table: Array<{
    name: string;
    existing: Buffer | undefined;
    managed?: string[];
    replace?: boolean;
    action: NodePlan['action'];
    json?: unknown;
    reason?: RegExp;
    changes?: string;
    adopted?: string[];
  }> = [
    {
      name: 'no file: write ours',
      existing: undefined,
      action: 'write',
      json: { auths: { 'a.io': OURS } },
      changes: 'file missing',
    },
    {
      name: 'foreign entry and top-level fields kept, ours appended',
      existing: buf({ credsStore: 'desktop', auths: { 'f.io': { auth: b64('x:y') } } }),
      action: 'write',
      json: { credsStore: 'desktop', auths: { 'f.io': { auth: b64('x:y') }, 'a.io': OURS } },
      changes: 'missing a.io',
    },
    {
      name: 'already ours: unchanged',
      existing: buf({ auths: { 'a.io': OURS } }),
      managed: ['a.io'],
      action: 'unchanged',
    },
    {
      name: 'same content, different formatting: unchanged (the node keeps its bytes)',
      existing: buf(`{\n"auths": {"a.io": ${JSON.stringify(OURS)}}}`),
      action: 'unchanged',
    },
    {
      name: 'outdated password',
      existing: buf({ auths: { 'a.io': { username: 'u', password: 'old', auth: b64('u:old') } } }),
      managed: ['a.io'],
      action: 'write',
      json: { auths: { 'a.io': OURS } },
      changes: 'outdated a.io',
    },
    {
      name: 'an existing same-key entry that was not ours is adopted',
      existing: buf({ auths: { 'a.io': { auth: b64('someone:else') } } }),
      action: 'write',
      adopted: ['a.io'],
    },
    {
      name: 'previously managed key no longer configured is removed; foreign kept',
      existing: buf({
        auths: { 'old.io': { auth: b64('o:o') }, 'f.io': { auth: b64('f:f') }, 'a.io': OURS },
      }),
      managed: ['a.io', 'old.io'],
      action: 'write',
      json: { auths: { 'f.io': { auth: b64('f:f') }, 'a.io': OURS } },
      changes: 'no longer configured old.io',
    },
    {
      name: 'BOM: refused as malformed',
      existing: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), buf({ auths: {} })]),
      action: 'refuse',
      reason: /byte order mark/,
    },
    { name: 'not JSON: refused', existing: buf('{"auths":'), action: 'refuse', reason: /not valid JSON/ },
    { name: 'empty file: refused', existing: buf(''), action: 'refuse', reason: /not valid JSON/ },
    {
      name: 'a foreign malformed auth fails the whole file (the kubelet rejects it): refused',
      existing: buf({ auths: { 'f.io': { auth: b64('nocolon') } } }),
      action: 'refuse',
      reason: /entry "f.io": field "auth": unable to parse auth field/,
    },
    {
      name: 'array top level: refused',
      existing: buf([]),
      action: 'refuse',
      reason: /top level must be a JSON object/,
    },
    {
      name: 'malformed with replaceMalformed: written from scratch',
      existing: buf('garbage'),
      replace: true,
      action: 'write',
      json: { auths: { 'a.io': OURS } },
    },
    {
      name: 'a later "Auths": null would reset ours in the kubelet: refused, not written',
      existing: buf('{"auths":{},"Auths":null}'),
      action: 'refuse',
      reason: /case variant of "auths"/,
    },
    {
      name: 'a later "Auths" with the same key would override ours: refused',
      existing: buf(`{"auths":{},"AUTHS":{"a.io":{"auth":"${b64('x:y')}"}}}`),
      action: 'refuse',
      reason: /case variant of "auths"/,
    },
    {
      name: 'a later "Auths" with other keys merges (as in Go): written',
      existing: buf(`{"auths":{},"Auths":{"z.io":{"auth":"${b64('x:y')}"}}}`),
      action: 'write',
    },
    { name: 'JSON null: written', existing: buf('null'), action: 'write', json: { auths: { 'a.io': OURS } } },
  ];
  for (const c of table)
    test(c.name, () => {
      const { p, json } = plan(c.existing, { managed: c.managed, replace: c.replace });
      assert.equal(p.action, c.action, JSON.stringify(p));
      if (c.json !== undefined) assert.deepEqual(json, c.json);
      if (c.reason) assert.match((p as { reason: string }).reason, c.reason);
      if (c.changes) assert.equal((p as { changes: string }).changes, c.changes);
      if (c.adopted) assert.deepEqual((p as { adopted: string[] }).adopted, c.adopted);
    });

  test('the sidecar is stale until it records the file and the keys', () => {
    const content = buf({ auths: { 'a.io': OURS } });
    const stale = planNode({ existing: content, sidecar: undefined, desired, replaceMalformed: false });
    assert.equal(stale.action === 'unchanged' && stale.sidecarStale, true);
    const fresh = planNode({
      existing: content,
      sidecar: { version: 1, managedKeys: ['a.io'], sha256: sha256hex(content) },
      desired,
      replaceMalformed: false,
    });
    assert.equal(fresh.action === 'unchanged' && fresh.sidecarStale, false);
  });

  test('a write renders deterministic bytes and passes the kubelet parser', () => {
    const a = plan(undefined).p;
    const b = plan(undefined).p;
    assert.equal(a.action, 'write');
    assert.equal((a as { content: string }).content, (b as { content: string }).content);
    assert.ok((a as { content: string }).content.endsWith('}\n'));
  });

  test('messages never carry passwords or user:pass@ parts of keys', () => {
    const { p } = plan(buf({ auths: { 'https://bob:hunter2@f.io': { auth: b64('nocolon-secret') } } }));
    assert.equal(p.action, 'refuse');
    const text = JSON.stringify(p);
    assert.ok(
      !text.includes('hunter2') && !text.includes('nocolon-secret') && !text.includes(b64('nocolon-secret')),
    );
    const w = plan(buf({ auths: {} }), {
      want: { auths: { 'https://bob:hunter2@a.io': { username: 'u', password: 'p' } } },
    }).p;
    assert.equal(w.action === 'write' && w.changes, 'missing <redacted>@a.io');
  });
});

describe('sidecar and paths', () => {
  test('paths beside config.json', () => {
    assert.equal(sidecarPath('/var/lib/kubelet/config.json'), '/var/lib/kubelet/.pullkeeper-managed.json');
    assert.match(
      backupPath('/x/config.json', buf('a')),
      /^\/x\/config\.json\.pullkeeper-malformed-[0-9a-f]{12}$/,
    );
    assert.equal(backupPath('/x/c', buf('a')), backupPath('/x/c', buf('a')));
  });
  test('parseSidecar round-trips and ignores what is not ours', () => {
    const s = { version: 1 as const, managedKeys: ['a.io'], sha256: 'ab' };
    assert.deepEqual(parseSidecar(buf(renderSidecar(s))), s);
    for (const bad of [
      '',
      'nope',
      '{"version":2,"managedKeys":[],"sha256":""}',
      '{"version":1,"managedKeys":[1],"sha256":""}',
    ])
      assert.equal(parseSidecar(buf(bad)), undefined, bad);
    assert.equal(parseSidecar(undefined), undefined);
  });
  test('inspectExisting', () => {
    assert.deepEqual(inspectExisting(undefined), { kind: 'absent' });
    assert.equal(inspectExisting(buf({ credsStore: 'x' })).kind, 'ok');
  });
});

describe('planNode: expiring credentials stay on the node until due', () => {
  const NOW = new Date('2026-11-29T06:00:00.000Z');
  const OLD = { username: 'AWS', password: 'old-token' };
  const NEW = { username: 'AWS', password: 'new-token' };
  const ecr = '1234.dkr.ecr.us-east-1.amazonaws.com';
  /** The file and sidecar a previous push wrote with the old token, due at `due`. */
  const written = (due: string, source = 'f1', extra: Record<string, unknown> = {}) => {
    const first = planNode({
      existing: undefined,
      sidecar: undefined,
      desired: { auths: { [ecr]: OLD, 'static.io': { username: 's', password: 'p' } } },
      replaceMalformed: false,
      expiring: { [ecr]: { refreshAt: due, source } },
      now: new Date('2026-11-29T00:00:00.000Z'),
    });
    assert.equal(first.action, 'write');
    if (first.action !== 'write') throw new Error('unreachable');
    const content = Object.keys(extra).length
      ? `${JSON.stringify({ ...JSON.parse(first.content), ...extra })}\n`
      : first.content;
    return {
      existing: buf(content),
      sidecar: parseSidecar(
        buf(
          renderSidecar({
            version: 1,
            managedKeys: first.managedKeys,
            sha256: sha256hex(first.content),
            expiring: first.expiring,
          }),
        ),
      ),
    };
  };
  const again = (w: ReturnType<typeof written>, o: { source?: string; now?: Date } = {}) =>
    planNode({
      ...w,
      desired: { auths: { [ecr]: NEW, 'static.io': { username: 's', password: 'p' } } },
      replaceMalformed: false,
      expiring: { [ecr]: { refreshAt: '2026-11-29T12:00:00.000Z', source: o.source ?? 'f1' } },
      now: o.now ?? NOW,
    });
  const tokenIn = (p: NodePlan) =>
    'content' in p
      ? (JSON.parse(p.content) as { auths: Record<string, { password: string }> }).auths[ecr]?.password
      : undefined;

  const table: Array<{
    name: string;
    plan: () => NodePlan;
    action: NodePlan['action'];
    token: string;
    due?: string;
  }> = [
    {
      name: 'a new token minted (cold start) while the node’s is fresh: unchanged, the old one stays',
      plan: () => again(written('2026-11-29T06:00:01.000Z')),
      action: 'unchanged',
      token: 'old-token',
      due: '2026-11-29T06:00:01.000Z',
    },
    {
      name: 'the node’s token is due: the new one is written',
      plan: () => again(written('2026-11-29T06:00:00.000Z')),
      action: 'write',
      token: 'new-token',
      due: '2026-11-29T12:00:00.000Z',
    },
    {
      name: 'the registry’s config changed: written at once',
      plan: () => again(written('2026-11-29T09:00:00.000Z'), { source: 'f2' }),
      action: 'write',
      token: 'new-token',
      due: '2026-11-29T12:00:00.000Z',
    },
    {
      name: 'someone changed the file since we wrote it: written (their entries kept)',
      plan: () => again(written('2026-11-29T09:00:00.000Z', 'f1', { credsStore: 'pass' })),
      action: 'write',
      token: 'new-token',
      due: '2026-11-29T12:00:00.000Z',
    },
  ];
  for (const c of table)
    test(c.name, () => {
      const p = c.plan();
      assert.equal(p.action, c.action);
      assert.equal(tokenIn(p), c.token);
      if (p.action !== 'refuse') assert.equal(p.expiring[ecr]?.refreshAt, c.due);
    });

  test('no expiring keys: the sidecar stays as before (no expiring field, not stale)', () => {
    const first = planNode({ existing: undefined, sidecar: undefined, desired, replaceMalformed: false });
    if (first.action !== 'write') throw new Error('expected a write');
    assert.deepEqual(first.expiring, {});
    const p = planNode({
      existing: buf(first.content),
      sidecar: { version: 1, managedKeys: first.managedKeys, sha256: sha256hex(first.content) },
      desired,
      replaceMalformed: false,
      expiring: {},
      now: NOW,
    });
    assert.equal(p.action, 'unchanged');
    assert.equal(p.action === 'unchanged' && p.sidecarStale, false);
  });

  test('parseSidecar ignores a malformed expiring map', () => {
    assert.deepEqual(
      parseSidecar(buf({ version: 1, managedKeys: [], sha256: 'x', expiring: { k: { refreshAt: 1 } } })),
      {
        version: 1,
        managedKeys: [],
        sha256: 'x',
      },
    );
  });
});
