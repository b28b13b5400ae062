import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { editDistance, suggest } from './suggest.js';

describe('editDistance', () => {
  for (const [a, b, want] of [
    ['', '', 0],
    ['', 'abc', 3],
    ['refresh', 'refresh', 0],
    ['refesh', 'refresh', 1],
    ['rferesh', 'refresh', 1],
    ['kitten', 'sitting', 3],
    ['ca', 'abc', 3],
  ] as const) {
    test(`${a || '""'} -> ${b || '""'} = ${want}`, () => {
      assert.equal(editDistance(a, b), want);
      assert.equal(editDistance(b, a), want);
    });
  }
});

describe('suggest', () => {
  const commands = [
    'image',
    'creds',
    'mint',
    'config',
    'refresh',
    'ensure',
    'doctor',
    'serve',
    'push',
    'status',
  ];
  for (const [word, want] of [
    ['refesh', 'refresh'],
    ['REFRESH', 'refresh'],
    ['docter', 'doctor'],
    ['pusj', 'push'],
    ['statsu', 'status'],
    ['ref', 'refresh'],
    ['frobnicate', undefined],
    ['x', undefined],
    ['', undefined],
  ] as const) {
    test(`${word || '""'} -> ${want ?? 'nothing'}`, () => assert.equal(suggest(word, commands), want));
  }
  test('flags: --dryrun -> dry-run', () =>
    assert.equal(suggest('dryrun', ['config', 'dry-run', 'json']), 'dry-run'));
});
