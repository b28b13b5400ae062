#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the tools module beside this script and
# caches them outside the repository, keyed by the hash of go.mod + go.sum +
# this script. Prints the directory that holds bin/kube-apiserver and bin/etcd.
# A second run with the same inputs prints the cached directory at once.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools="$here/tools"
k8s_version=v1.34.2
key=$(cat "$tools/go.mod" "$tools/go.sum" "$0" | sha256sum | cut -c1-16)
cache_root=${PULLKEEPER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullkeeper}
out="$cache_root/kube-$key"
if [[ -x "$out/bin/kube-apiserver" && -x "$out/bin/etcd" ]]; then
  echo "$out"; exit 0
fi
command -v go >/dev/null || { echo "build.sh: go is not installed; install Go 1.24 or newer" >&2; exit 1; }
mkdir -p "$cache_root"
tmp=$(mktemp -d "$cache_root/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
minor=${k8s_version#v1.}; minor=${minor%%.*}
start=$(date +%s)
echo "build.sh: building kube-apiserver $k8s_version and etcd (first build takes several minutes; cached in $out)" >&2
(cd "$tools" && go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" -o "$tmp/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver) >&2
(cd "$tools" && go build -trimpath -ldflags "-s -w" -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3) >&2
echo "build.sh: built in $(( $(date +%s) - start )) s" >&2
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
echo "$out"
