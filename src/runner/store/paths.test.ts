import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { entryPath, safeMode, whiteoutOf } from './paths.js';

describe('entryPath', () => {
  const ok: Array<[string, string]> = [
    ['usr/bin/sh', 'usr/bin/sh'],
    ['./usr/bin/sh', 'usr/bin/sh'],
    ['a//b/./c/', 'a/b/c'],
    ['./', ''],
    ['.', ''],
    ['..foo/bar', '..foo/bar'],
    ['a/...', 'a/...'],
  ];
  for (const [name, rel] of ok)
    it(`accepts ${JSON.stringify(name)}`, () => assert.equal((entryPath(name) as { rel: string }).rel, rel));
  const refused: Array<[string, RegExp]> = [
    ['../x', /\.\./],
    ['a/../../x', /\.\./],
    ['a/..', /\.\./],
    ['/etc/passwd', /absolute/],
    ['//x', /absolute/],
    ['a\0b', /NUL/],
  ];
  for (const [name, reason] of refused) {
    it(`refuses ${JSON.stringify(name)}`, () => {
      const r = entryPath(name);
      assert.equal(r.ok, false);
      assert.match((r as { reason: string }).reason, reason);
    });
  }
});

describe('whiteoutOf', () => {
  const cases: Array<[string, ReturnType<typeof whiteoutOf>['kind'], string?]> = [
    ['foo', 'none'],
    ['.whfoo', 'none'],
    ['.wh.foo', 'whiteout', 'foo'],
    ['.wh..hidden', 'whiteout', '.hidden'],
    ['.wh..wh..opq', 'opaque'],
    ['.wh..wh.plnk', 'meta'],
    ['.wh.', 'invalid'],
    ['.wh..', 'invalid'],
    ['.wh...', 'invalid'],
  ];
  for (const [base, kind, target] of cases) {
    it(`${JSON.stringify(base)} is ${kind}`, () => {
      const r = whiteoutOf(base);
      assert.equal(r.kind, kind);
      if (target !== undefined) assert.equal((r as { target: string }).target, target);
    });
  }
});

describe('safeMode', () => {
  it('drops setuid and setgid by default and says so', () => {
    assert.deepEqual(safeMode(0o104755, false), { mode: 0o755, stripped: true });
    assert.deepEqual(safeMode(0o2755, false), { mode: 0o755, stripped: true });
  });
  it('keeps the sticky bit and plain modes', () => {
    assert.deepEqual(safeMode(0o1777, false), { mode: 0o1777, stripped: false });
    assert.deepEqual(safeMode(0o644, false), { mode: 0o644, stripped: false });
  });
  it('keeps setuid when asked', () =>
    assert.deepEqual(safeMode(0o4755, true), { mode: 0o4755, stripped: false }));
});
