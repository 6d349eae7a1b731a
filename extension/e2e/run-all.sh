#!/usr/bin/env bash
# `make e2e`: the extension end to end in a real VS Code (code-server + Debian chromium, shared/reference/vscode-e2e.md).
# Installs what it needs on a fresh machine (apt packages, code-server from npm: ~3-10 min once, cached in
# extension/e2e/.cache), packages the .vsix, builds the workspace with a tiny model, runs the scenarios.
# Env: PYTHON (default .venv/bin/python), CS_VERSION (4.139.1), KEEP_STATE=1 keeps code-server's state dirs.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
E2E=$ROOT/extension/e2e
CACHE=$E2E/.cache
CS_VERSION=${CS_VERSION:-4.139.1}
CS_DIR=$CACHE/code-server-$CS_VERSION
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
SHOTS=$E2E/artifacts
mkdir -p "$CACHE" "$SHOTS"

if [ ! -f "$CS_DIR/.installed" ]; then
  echo "== installing code-server $CS_VERSION (once)"
  PREFIX=$CS_DIR CS_VERSION=$CS_VERSION bash "$E2E/setup-code-server.sh"
  touch "$CS_DIR/.installed"
fi
[ -x /usr/lib/chromium/chromium ] || { echo "chromium missing: run with SKIP_APT unset"; exit 1; }
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
npm run --silent package
# an empty extension activating on the same event: the activation-time baseline of this machine and moment
(cd "$E2E/baseline-ext" && node "$ROOT/node_modules/@vscode/vsce/vsce" package --no-dependencies --allow-missing-repository \
  --skip-license -o "$CACHE/baseline.vsix" >/dev/null)

echo "== workspace"
WS=$CACHE/ws
rm -rf "$WS"
"$PYTHON" "$E2E/make_workspace.py" "$WS" >/dev/null
export MODELMILL_HOME=$CACHE/modelmill-home
# The run history the compare scenario reads is this run's: runs kept from earlier e2e runs (the cache outlives
# them) would add rows to its pickers.
rm -rf "$MODELMILL_HOME/lsp/runs"

# the workspace lies inside this repository: keep the git extension from offering to open the parent repository
GIT='"git.openRepositoryInParentFolders": "never"'
# Editor state (and chromium's sockets) go under the system temp folder, not this checkout: a Unix socket
# path must stay under ~107 bytes, and a clone can live deep in the file system.
export CS=$CS_DIR/run-code-server EXT=$ROOT/dist/modelmill.vsix WS SHOTS PYTHON E2E_TMP=${TMPDIR:-/tmp}
rc=0
SUMMARY=$CACHE/summary.log
: > "$SUMMARY"
scenario() { bash "$E2E/run-e2e.sh" 2>&1 | tee -a "$SUMMARY"; return "${PIPESTATUS[0]}"; }
echo "== scenario: vsix, diagnostics, quick fix, optimize, cancel, activation time"
EXTRA_VSIX=$CACHE/baseline.vsix TEST=$E2E/modelmill.e2e.mjs EXTRA_SETTINGS="$GIT, \"modelmill.interpreter\": \"$PYTHON\"" scenario || rc=1
echo "== scenario: evaluate with chosen metrics, compare runs (the run history of the first scenario)"
TEST=$E2E/compare.e2e.mjs EXTRA_SETTINGS="$GIT, \"modelmill.interpreter\": \"$PYTHON\"" PORT=8768 scenario || rc=1
echo "== scenario: wrong Python path"
TEST=$E2E/wrong-python.e2e.mjs EXTRA_SETTINGS="$GIT, \"modelmill.interpreter\": \"/nonexistent/bin/python\"" \
  PORT=8766 scenario || rc=1

echo "== scenario: untrusted workspace"
rm -rf "$WS/models"
TEST=$E2E/untrusted.e2e.mjs EXTRA_SETTINGS="$GIT, \"modelmill.interpreter\": \"$PYTHON\"" WORKSPACE_TRUST=untrusted \
  PORT=8767 scenario || rc=1

# The screenshots the docs show: the latest panel mid-run and at the end, a comparison.
[ -n "${CI:-}" ] || for shot in runs-panel-running.png runs-panel-done.png compare.png; do
  [ -f "$SHOTS/$shot" ] && cp "$SHOTS/$shot" "$ROOT/docs/images/$shot"
done
echo "screenshots: $SHOTS"
# one closing line for all scenarios (a scenario that died before its own summary counts as a failure)
awk -v rc=$rc '/^[0-9]+ passed, [0-9]+ failed$/ {p += $1; f += $3; n++} END {if (n < 4 || (rc && !f)) f++; printf "e2e: %d passed, %d failed\n", p, f}' "$SUMMARY"
exit $rc
