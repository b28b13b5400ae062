#!/usr/bin/env bash
# Builds kubelet from the cluster harness's Go tools module (test/harness/cluster/tools,
# the same k8s.io/kubernetes version as kube-apiserver) and caches it outside the
# repository, keyed by the hash of that go.mod + go.sum + this script. Prints the
# directory that holds bin/kubelet; a second run with the same inputs prints it at once.
# The tools module itself is not changed: the build runs in a copy of it, where
# `-mod=mod` may add the go.sum lines of kubelet-only packages.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools="$here/../cluster/tools"
k8s_version=v1.34.2
key=$(cat "$tools/go.mod" "$tools/go.sum" "$0" | sha256sum | cut -c1-16)
cache_root=${PULLKEEPER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullkeeper}
out="$cache_root/kubelet-$key"
if [[ -x "$out/bin/kubelet" ]]; then
  echo "$out"; exit 0
fi
command -v go >/dev/null || { echo "kubelet/build.sh: go is not installed; install Go 1.24 or newer" >&2; exit 1; }
mkdir -p "$cache_root"
tmp=$(mktemp -d "$cache_root/.build-kubelet-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src" "$tmp/bin"
cp "$tools/go.mod" "$tools/go.sum" "$tmp/src/"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
minor=${k8s_version#v1.}; minor=${minor%%.*}
start=$(date +%s)
echo "kubelet/build.sh: building kubelet $k8s_version (about 2 min once kube-apiserver's modules are cached; cached in $out)" >&2
(cd "$tmp/src" && go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" -o "$tmp/bin/kubelet" k8s.io/kubernetes/cmd/kubelet) >&2
echo "kubelet/build.sh: built in $(( $(date +%s) - start )) s" >&2
rm -rf "$tmp/src"
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
echo "$out"
