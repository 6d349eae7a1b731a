-- ModelMill's language server in Neovim (0.7.2, Debian's package), headless: run by tests/lsp/test_lsp_neovim.py as
--   nvim --headless -u NONE -i NONE -n -c "luafile modelmill_test.lua"
-- with MM_SERVER (the python), MM_WORKSPACE (a folder), MM_ENCODING ("utf-8" or "utf-16") and MM_RESULT (a file
-- that receives one line per check: "ok <what>" or "FAIL <what>: <why>"). Exits 0 when every check passed.

local server_python = os.getenv("MM_SERVER")
local workspace = os.getenv("MM_WORKSPACE")
local encoding = os.getenv("MM_ENCODING") or "utf-16"
local result_path = os.getenv("MM_RESULT")
local TIMEOUT = 60000

local lines_out = {}
local failed = false

local function report(ok, what, why)
  if ok then
    table.insert(lines_out, "ok " .. what)
  else
    failed = true
    table.insert(lines_out, "FAIL " .. what .. ": " .. tostring(why))
  end
end

local function finish()
  local file = io.open(result_path, "w")
  file:write(table.concat(lines_out, "\n") .. "\n")
  file:close()
  vim.cmd(failed and "cquit 1" or "qall!")
end

local function check(what, fn)
  local ok, err = pcall(fn)
  report(ok, what, err)
  return ok
end

-- a config with non-ASCII text before a finding on the same line: its column differs in UTF-8 and UTF-16
local config_lines = {
  "{",
  '  "input_model": {"type": "HfModel", "model_path": "model"},',
  '  "workflow_id": "модель-😀", "passes": {"q": {"type": "OnnxDynamicQuantizaton"}},',
  '  "systems": {"local": {}},',
  '  "output_dir": "out"',
  "}",
}
local path = workspace .. "/nvim.olive.json"
local uri = vim.uri_from_fname(path)
vim.fn.writefile(config_lines, path)

local exit_code = nil
local published = {} -- the raw LSP diagnostics last published for the buffer (for the code action's context)
local capabilities = vim.lsp.protocol.make_client_capabilities()
capabilities.general = { positionEncodings = { encoding } }
local client_id = vim.lsp.start_client({
  name = "modelmill",
  cmd = { server_python, "-m", "modelmill", "lsp" },
  cmd_cwd = workspace,
  root_dir = workspace,
  capabilities = capabilities,
  offset_encoding = encoding,
  on_exit = function(code, _signal) exit_code = code end,
  handlers = {
    ["textDocument/publishDiagnostics"] = function(err, result, ctx, config)
      if result and result.uri == uri then published = result.diagnostics end
      return vim.lsp.diagnostic.on_publish_diagnostics(err, result, ctx, config)
    end,
  },
})
if not client_id then
  report(false, "start", "vim.lsp.start_client returned nil")
  finish()
  return
end

vim.cmd("edit " .. vim.fn.fnameescape(path))
local bufnr = vim.api.nvim_get_current_buf()
vim.bo[bufnr].filetype = "json"
vim.lsp.buf_attach_client(bufnr, client_id)

local client = vim.lsp.get_client_by_id(client_id)
local initialized = vim.wait(TIMEOUT, function() return client.initialized end, 20)
report(initialized, "attach", "the server did not initialize")
if not initialized then finish() return end

check("position encoding negotiated", function()
  local negotiated = client.server_capabilities.positionEncoding or "utf-16"
  assert(negotiated == encoding, "server answered " .. tostring(negotiated) .. ", asked " .. encoding)
end)

-- diagnostics at the right places (vim.diagnostic holds byte columns converted with the negotiated encoding)
local function find_diagnostic(code)
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    local lsp = d.user_data and d.user_data.lsp or {}
    if lsp.code == code then
      for _, raw in ipairs(published) do
        if raw.code == code then return d, raw end
      end
    end
  end
end
local got = vim.wait(TIMEOUT, function() return find_diagnostic("unknown-pass-type") ~= nil end, 20)
local diagnostic, lsp_diagnostic = find_diagnostic("unknown-pass-type")
check("diagnostic on the non-ASCII line", function()
  assert(got, "no unknown-pass-type diagnostic arrived")
  local line = config_lines[3]
  local start = line:find('"OnnxDynamicQuantizaton"', 1, true) - 1 -- a byte column, 0-based
  assert(diagnostic.lnum == 2, "line " .. diagnostic.lnum)
  assert(diagnostic.col == start, "byte column " .. diagnostic.col .. ", expected " .. start)
  assert(diagnostic.end_col == start + #'"OnnxDynamicQuantizaton"', "end byte column " .. diagnostic.end_col)
end)

local function request(method, params)
  local response, err = client.request_sync(method, params, TIMEOUT, bufnr)
  assert(response, method .. ": " .. tostring(err))
  assert(not response.err, method .. ": " .. vim.inspect(response.err))
  return response.result
end

check("completion", function()
  local line = config_lines[4]
  local character = line:find("{}", 1, true) -- after the '{' (an ASCII line: bytes = UTF-16 units)
  local result = request("textDocument/completion", {
    textDocument = { uri = uri }, position = { line = 3, character = character } })
  local labels = {}
  for _, item in ipairs(result.items or result) do labels[item.label] = true end
  assert(labels["type"] and labels["accelerators"], "labels: " .. vim.inspect(vim.tbl_keys(labels)))
end)

check("hover", function()
  local result = request("textDocument/hover", { textDocument = { uri = uri }, position = { line = 1, character = 5 } })
  local text = type(result.contents) == "table" and result.contents.value or tostring(result.contents)
  assert(text:find("input_model", 1, true), "hover: " .. tostring(text))
end)

check("modelmill.validate before the fix", function()
  local result = request("workspace/executeCommand", { command = "modelmill.validate", arguments = { { uri = uri } } })
  assert(result.errors >= 1, vim.inspect(result))
end)

check("code action fixes the pass type", function()
  local actions = request("textDocument/codeAction", {
    textDocument = { uri = uri }, range = lsp_diagnostic.range,
    context = { diagnostics = { lsp_diagnostic }, only = { "quickfix" } } })
  local chosen
  for _, action in ipairs(actions) do
    if action.edit and action.title:find("OnnxDynamicQuantization", 1, true) then chosen = action end
  end
  assert(chosen, "no fix among " .. vim.inspect(vim.tbl_map(function(a) return a.title end, actions)))
  vim.lsp.util.apply_workspace_edit(chosen.edit, client.offset_encoding)
  local line = vim.api.nvim_buf_get_lines(bufnr, 2, 3, false)[1]
  assert(line == config_lines[3]:gsub("Quantizaton", "Quantization"), "line now: " .. line)
end)

check("modelmill.validate after the fix (the server applied the edit at the right place)", function()
  local clean = vim.wait(TIMEOUT, function() return find_diagnostic("unknown-pass-type") == nil end, 20)
  assert(clean, "the unknown-pass-type diagnostic is still there")
  local result = request("workspace/executeCommand", { command = "modelmill.validate", arguments = { { uri = uri } } })
  for _, d in ipairs(result.diagnostics) do
    assert(d.code ~= "unknown-pass-type" and d.code ~= "syntax", "still: " .. vim.inspect(d))
  end
end)

check("clean shutdown", function()
  client.stop()
  assert(vim.wait(TIMEOUT, function() return exit_code ~= nil end, 20), "the server did not exit")
  assert(exit_code == 0, "exit code " .. tostring(exit_code))
end)

finish()
