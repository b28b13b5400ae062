import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NodeConfigError, nodeConfigFrom, verificationFrom } from './node-config.js';

describe('node config: KEP-2535 imagePullCredentialsVerificationPolicy', () => {
  test("no key set: kubelet 1.35's default, no warning", () => {
    const c = nodeConfigFrom({}, { stateDir: '/x' });
    assert.equal(c.imagePullCredentialsVerificationPolicy, 'NeverVerifyPreloadedImages');
    assert.deepEqual(c.preloadedImagesVerificationAllowlist, []);
    assert.deepEqual(c.warnings, []);
  });
  test('each policy is taken as written', () => {
    for (const p of ['NeverVerify', 'NeverVerifyPreloadedImages', 'AlwaysVerify'] as const) {
      assert.equal(verificationFrom({ imagePullCredentialsVerificationPolicy: p }).policy, p);
    }
  });
  test('verifyCachedCredentials is a deprecated alias (true: AlwaysVerify, false: NeverVerify), with a warning', () => {
    const on = verificationFrom({ verifyCachedCredentials: true });
    assert.equal(on.policy, 'AlwaysVerify');
    assert.match(
      on.warnings[0]!,
      /verifyCachedCredentials is deprecated; it means imagePullCredentialsVerificationPolicy: AlwaysVerify/,
    );
    const off = verificationFrom({ verifyCachedCredentials: false });
    assert.equal(off.policy, 'NeverVerify');
    assert.equal(off.warnings.length, 1);
  });
  test('both the alias and the policy: refused, naming what to remove', () => {
    assert.throws(
      () =>
        verificationFrom({
          verifyCachedCredentials: true,
          imagePullCredentialsVerificationPolicy: 'AlwaysVerify',
        }),
      (e: Error) => e instanceof NodeConfigError && /remove verifyCachedCredentials/.test(e.message),
    );
  });
  test('an allowlist needs NeverVerifyAllowlistedImages, and its entries are checked as kubelet does', () => {
    const ok = verificationFrom({
      imagePullCredentialsVerificationPolicy: 'NeverVerifyAllowlistedImages',
      preloadedImagesVerificationAllowlist: ['registry.example/base/*', 'docker.io/library/busybox'],
    });
    assert.deepEqual(ok.allowlist, ['registry.example/base/*', 'docker.io/library/busybox']);
    assert.throws(
      () => verificationFrom({ preloadedImagesVerificationAllowlist: ['registry.example/*'] }),
      /only used with imagePullCredentialsVerificationPolicy: NeverVerifyAllowlistedImages \(the policy here is NeverVerifyPreloadedImages\)/,
    );
    assert.throws(
      () =>
        verificationFrom({
          imagePullCredentialsVerificationPolicy: 'NeverVerifyAllowlistedImages',
          preloadedImagesVerificationAllowlist: ['registry.example/app:v1'],
        }),
      (e: Error) => e instanceof NodeConfigError && /neither a tag nor a digest/.test(e.message),
    );
  });
});
