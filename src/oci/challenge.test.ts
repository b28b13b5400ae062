import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChallenges, pullScope } from './challenge.js';

describe('parseChallenges', () => {
  const cases: Array<[string, string, ReturnType<typeof parseChallenges>]> = [
    [
      'distribution token challenge',
      'Bearer realm="http://127.0.0.1:5060/token",service="test-registry",scope="repository:app:pull"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'http://127.0.0.1:5060/token',
            service: 'test-registry',
            scope: 'repository:app:pull',
          },
        },
      ],
    ],
    ['basic', 'Basic realm="test-basic"', [{ scheme: 'basic', params: { realm: 'test-basic' } }]],
    [
      'scheme case and spaces',
      'bEaReR  realm = "x" , service=reg',
      [{ scheme: 'bearer', params: { realm: 'x', service: 'reg' } }],
    ],
    [
      'two challenges',
      'Basic realm="a", Bearer realm="b",service="s"',
      [
        { scheme: 'basic', params: { realm: 'a' } },
        { scheme: 'bearer', params: { realm: 'b', service: 's' } },
      ],
    ],
    [
      'escaped quote and comma inside a quoted scope',
      'Bearer realm="r",scope="repository:a:pull,push repository:b:pull",error="say \\"hi\\""',
      [
        {
          scheme: 'bearer',
          params: { realm: 'r', scope: 'repository:a:pull,push repository:b:pull', error: 'say "hi"' },
        },
      ],
    ],
    ['empty', '', []],
    ['scheme only', 'Negotiate', [{ scheme: 'negotiate', params: {} }]],
  ];
  for (const [name, header, want] of cases) {
    it(name, () => assert.deepEqual(parseChallenges(header), want));
  }
});

describe('pullScope', () => {
  it('names the repository and the pull action', () => {
    assert.equal(pullScope('library/busybox'), 'repository:library/busybox:pull');
  });
});
