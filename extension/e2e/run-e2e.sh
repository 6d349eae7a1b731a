#!/usr/bin/env bash
# Start a throwaway code-server with one extension loaded, run a Playwright (Debian chromium) test, stop it.
# From shared/reference/vscode-e2e.md; the test also gets E2E_STATE (user data and logs: activation timing).
# Usage: CS=/path/run-code-server EXT=<dir-or-.vsix> WS=<workspace dir> TEST=<test.mjs> bash run-e2e.sh
set -euo pipefail
CS=${CS:?path to run-code-server}; EXT=${EXT:?extension folder or .vsix}; WS=${WS:?workspace folder}; TEST=${TEST:?playwright test}
PORT=${PORT:-8765}
# WORKSPACE_TRUST=untrusted: trust is on and the workspace is not trusted (Restricted Mode); else trust is off
TRUST=false; TRUST_ARGS=(--disable-workspace-trust)
if [ "${WORKSPACE_TRUST:-}" = untrusted ]; then TRUST=true; TRUST_ARGS=(); fi
STATE=$(mktemp -d "${E2E_TMP:-${TMPDIR:-/tmp}}/vscode-e2e-state.XXXXXX")
mkdir -p "$STATE/data/User" "$STATE/exts" "$STATE/tmp"
export TMPDIR=$STATE/tmp   # VS Code puts vscode-ipc-*/vscode-git-* sockets in os.tmpdir(); keep them in STATE
# user settings (server side): no welcome page, no trust prompt, no telemetry; plus caller's extras
cat > "$STATE/data/User/settings.json" <<EOJ
{ "workbench.startupEditor": "none", "security.workspace.trust.enabled": $TRUST, "security.workspace.trust.startupPrompt": "never",
  "telemetry.telemetryLevel": "off", "extensions.autoCheckUpdates": false, "extensions.autoUpdate": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden", "chat.disableAIFeatures": true
  ${EXTRA_SETTINGS:+, $EXTRA_SETTINGS} }
EOJ
printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$PORT" > "$STATE/config.yaml"
ARGS=(--config "$STATE/config.yaml" --user-data-dir "$STATE/data" --extensions-dir "$STATE/exts")
if [ -d "$EXT" ]; then
  # development folder: link it in; without extensions.json VS Code scans the folder
  id=$(node -p "const p=require('$EXT/package.json'); p.publisher+'.'+p.name+'-'+p.version")
  ln -s "$(realpath "$EXT")" "$STATE/exts/$id"
else
  INSTALL=(--install-extension "$EXT")
  for extra in ${EXTRA_VSIX:-}; do INSTALL+=(--install-extension "$extra"); done   # e.g. the activation baseline
  "$CS" "${ARGS[@]}" "${INSTALL[@]}"
fi
"$CS" "${ARGS[@]}" --list-extensions --show-versions
# own process group (setsid) so that cleanup also ends the extension host and the language server it spawned
setsid "$CS" "${ARGS[@]}" --disable-telemetry --disable-update-check "${TRUST_ARGS[@]}" "$WS" > "$STATE/server.log" 2>&1 &
SERVER=$!
cleanup() {
  local rc=$?; set +e
  kill -TERM -- -$SERVER 2>/dev/null
  for _ in $(seq 1 50); do kill -0 -- -$SERVER 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- -$SERVER 2>/dev/null; wait $SERVER 2>/dev/null
  [ -n "${KEEP_STATE:-}" ] || rm -rf "$STATE"
  exit $rc
}
trap cleanup EXIT
for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
E2E_STATE=$STATE VSC_URL="http://127.0.0.1:$PORT/?folder=$(realpath "$WS")" node "$TEST"
