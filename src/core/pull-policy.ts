/**
 * imagePullPolicy: the API server's defaulting, the AlwaysPullImages
 * admission plugin, and the kubelet's pull-or-not decision with its back-off.
 *
 * Sources: `pkg/apis/core/v1/defaults.go` (SetDefaults_Container),
 * `plugin/pkg/admission/alwayspullimages/admission.go`,
 * `pkg/kubelet/images/image_manager.go`, `pkg/kubelet/kubelet.go`.
 */
import { goQuote, imageTagOrDefault, parseImageRef } from './image-ref.js';

/** The three values of `imagePullPolicy`. */
export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

/** The policy AlwaysPullImages enforces. */
export const PULL_ALWAYS: PullPolicy = 'Always';

/**
 * The policy the API server fills in when `imagePullPolicy` is empty: `Always`
 * when kubelet's `ParseImageName` yields the tag `latest` (written, or implied
 * by the absence of both tag and digest), `IfNotPresent` otherwise. Parse
 * errors are ignored here (the kubelet reports InvalidImageName later).
 *
 *   defaultPullPolicy('nginx')                      // 'Always'
 *   defaultPullPolicy('nginx:1.25')                 // 'IfNotPresent'
 *   defaultPullPolicy('nginx@sha256:<hex>')         // 'IfNotPresent'
 *   defaultPullPolicy('nginx:latest@sha256:<hex>')  // 'Always'
 *   defaultPullPolicy('nginx:LATEST')               // 'IfNotPresent' (case-sensitive)
 *   defaultPullPolicy('Nginx')                      // 'IfNotPresent' (unparsable)
 */
export function defaultPullPolicy(image: string): 'Always' | 'IfNotPresent' {
  let tag: string;
  try {
    tag = imageTagOrDefault(parseImageRef(image));
  } catch {
    return 'IfNotPresent';
  }
  return tag === 'latest' ? 'Always' : 'IfNotPresent';
}

/** The part of a container that pull policy concerns. */
export interface PullPolicyContainer {
  image?: string;
  imagePullPolicy?: string;
}

/** The container lists of a PodSpec, in the order `VisitContainersWithPath` walks them. */
export interface PodSpecContainers<C extends PullPolicyContainer = PullPolicyContainer> {
  initContainers?: C[];
  containers?: C[];
  ephemeralContainers?: C[];
}

const CONTAINER_LISTS = ['initContainers', 'containers', 'ephemeralContainers'] as const;

function* visitContainers<C extends PullPolicyContainer>(
  spec: PodSpecContainers<C>,
): Generator<[container: C, path: string]> {
  for (const list of CONTAINER_LISTS) {
    const containers = spec[list] ?? [];
    for (const [i, container] of containers.entries()) yield [container, `spec.${list}[${i}]`];
  }
}

/**
 * The AlwaysPullImages mutation: every init, regular and ephemeral container
 * gets `imagePullPolicy: Always`. Returns a new spec; the input is not changed.
 *
 *   alwaysPullImages({ containers: [{ image: 'a', imagePullPolicy: 'Never' }] })
 *   // { containers: [{ image: 'a', imagePullPolicy: 'Always' }] }
 */
export function alwaysPullImages<S extends PodSpecContainers>(spec: S): S {
  const out: PodSpecContainers = { ...spec };
  for (const list of CONTAINER_LISTS) {
    const containers = spec[list];
    if (containers !== undefined) out[list] = containers.map((c) => ({ ...c, imagePullPolicy: PULL_ALWAYS }));
  }
  return out as S;
}

/**
 * The AlwaysPullImages validation: one field error per container whose policy
 * is not `Always`, worded as `field.NotSupported` prints it.
 *
 *   alwaysPullImagesViolations({ containers: [{ imagePullPolicy: 'IfNotPresent' }] })
 *   // ['spec.containers[0].imagePullPolicy: Unsupported value: "IfNotPresent": supported values: "Always"']
 */
export function alwaysPullImagesViolations(spec: PodSpecContainers): string[] {
  const errors: string[] = [];
  for (const [container, path] of visitContainers(spec)) {
    const policy = container.imagePullPolicy ?? '';
    if (policy !== PULL_ALWAYS) {
      errors.push(
        `${path}.imagePullPolicy: Unsupported value: ${goQuote(policy)}: supported values: ${goQuote(PULL_ALWAYS)}`,
      );
    }
  }
  return errors;
}

/**
 * AlwaysPullImages skips a pod Update entirely (no mutation, no validation)
 * when every image of the new spec already appears in the old spec.
 *
 *   isUpdateWithNoNewImages({ containers: [{ image: 'a' }] }, { containers: [{ image: 'a' }] })  // true
 *   isUpdateWithNoNewImages({ containers: [{ image: 'a' }] }, { containers: [{ image: 'b' }] })  // false
 */
export function isUpdateWithNoNewImages(oldSpec: PodSpecContainers, newSpec: PodSpecContainers): boolean {
  const oldImages = new Set<string>();
  for (const [container] of visitContainers(oldSpec)) oldImages.add(container.image ?? '');
  for (const [container] of visitContainers(newSpec)) {
    if (!oldImages.has(container.image ?? '')) return false;
  }
  return true;
}

/** What the kubelet does with an image once it knows whether it is present. */
export type PullDecision =
  | { action: 'pull' }
  | { action: 'use-present'; reason: 'Pulled'; message: string }
  | { action: 'fail'; reason: 'ErrImageNeverPull'; message: string };

/**
 * The kubelet's decision for one container (`shouldPullImage` and what
 * follows it in `EnsureImageExists`). `image` is the container's image as
 * written; it is quoted into the event messages as the kubelet does.
 *
 *   decidePull('Always', true, 'nginx')        // { action: 'pull' }
 *   decidePull('IfNotPresent', false, 'nginx') // { action: 'pull' }
 *   decidePull('IfNotPresent', true, 'nginx')
 *   // { action: 'use-present', reason: 'Pulled',
 *   //   message: 'Container image "nginx" already present on machine' }
 *   decidePull('Never', false, 'nginx')
 *   // { action: 'fail', reason: 'ErrImageNeverPull',
 *   //   message: 'Container image "nginx" is not present with pull policy of Never' }
 *
 * With `Always` the presence check is skipped: pass anything for `present`.
 */
export function decidePull(policy: PullPolicy, present: boolean, image: string): PullDecision {
  if (policy === 'Always' || (policy === 'IfNotPresent' && !present)) return { action: 'pull' };
  if (present) {
    return {
      action: 'use-present',
      reason: 'Pulled',
      message: `Container image ${goQuote(image)} already present on machine`,
    };
  }
  return {
    action: 'fail',
    reason: 'ErrImageNeverPull',
    message: `Container image ${goQuote(image)} is not present with pull policy of Never`,
  };
}

/** kubelet `imageBackOffPeriod`. */
export const IMAGE_BACKOFF_INITIAL_SECONDS = 10;
/** kubelet `MaxImageBackOff`. */
export const IMAGE_BACKOFF_MAX_SECONDS = 300;

/**
 * The image pull back-off after `failures` consecutive failed pulls of one
 * `<podUID>_<image>` key: 0 before the first failure, then doubling from 10s
 * up to the 300s cap (`flowcontrol.NewBackOff(10s, 300s)`, no jitter).
 *
 *   pullBackoffSeconds(0)  // 0
 *   pullBackoffSeconds(1)  // 10
 *   pullBackoffSeconds(5)  // 160
 *   pullBackoffSeconds(6)  // 300
 */
export function pullBackoffSeconds(failures: number): number {
  if (!(failures >= 1)) return 0;
  const exponent = Math.floor(failures) - 1;
  return Math.min(IMAGE_BACKOFF_INITIAL_SECONDS * 2 ** exponent, IMAGE_BACKOFF_MAX_SECONDS);
}
