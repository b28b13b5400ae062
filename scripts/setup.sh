#!/usr/bin/env bash
# Installs everything pullkeeper's demo and tests need on a fresh Debian machine
# of this project's kind, as root. Idempotent: a second run only checks.
#   scripts/setup.sh demo   Node packages, Debian packages, moto, kube-apiserver/etcd (built once, cached)
#   scripts/setup.sh test   the same, plus what only the tests use (headless Chromium, hyperfine)
#   scripts/setup.sh build  only Node 24 and the Node packages (`make build`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
want=${1:-test}
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# Node 24 (the Lambda runtime nodejs24.x): provided beside an older system Node by scripts/node24.sh.
node_bin=$(bash scripts/node24.sh)
export PATH="$node_bin:$PATH"
say "node $(node --version) from $node_bin"

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing Node packages (npm install, from package-lock.json)"
  # Not `npm ci`: npm 11 writes lock files without the other platforms' optional
  # packages (Biome's binaries for macOS, Windows, musl) and `npm ci` then rejects
  # its own lock file. `npm install` installs the locked versions and leaves the lock as it is.
  npm install --no-audit --no-fund --loglevel=error
fi
if [[ $want == build ]]; then
  say "ready (Node packages only)"
  exit 0
fi

debs=(docker-registry openssh-server openssh-client pssh runc crun attr iproute2 busybox-static skopeo umoci apache2-utils jq openssl)
# Only the tests: the status page is checked in Debian's headless Chromium, shell completion in
# zsh and fish; benchmarks use hyperfine; the kubelet harness runs its own containerd with CNI.
[[ $want == test ]] && debs+=(chromium zsh fish hyperfine containerd containernetworking-plugins)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) != 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import moto, flask, werkzeug' >/dev/null 2>&1; then
  say "installing moto (ECR endpoint for tests)"
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.1'
fi

say "kube-apiserver + etcd (first build takes several minutes, then cached)"
bash test/harness/cluster/build.sh >/dev/null
if [[ $want == test ]]; then
  say "kubelet for the kubelet harness (built once from the same Go modules, then cached)"
  bash test/harness/kubelet/build.sh >/dev/null
fi
say "ready"
