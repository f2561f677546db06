-- wrk script: MCP `tools/call memory_search` (stateless Streamable HTTP,
-- one JSON-RPC request per POST /mcp) with the natural-language questions of
-- benches/recall_questions.lua over the store benches/recall_load.py preloads.
-- Each wrk connection is one MCP client.
-- usage: wrk -t2 -c16 -d12s -s benches/mcp_search.lua http://127.0.0.1:PORT
local names = {"Caroline","Melanie","Jon","Gina","Evan","Sam","Priya","Tomas","Aiko","Lena",
  "Marcus","Nadia","Oscar","Rosa","Felix","Hana","Ivan","Julia","Kofi","Maya"}
local verbs = {"visit","paint","buy","fix","cook","find","plan","sell","watch","build",
  "lose","borrow","clean","photograph","adopt","review","design","record","organize","repair"}
local nouns = {"bicycle","guitar","garden","kitchen","painting","camera","boat","bookshelf",
  "laptop","piano","tent","sofa"}
local forms = {"When did %s %s the %s?", "Where did %s %s a %s?", "Why did %s %s the %s last week?"}
local counter = 0
request = function()
  counter = counter + 1
  local n = names[(counter % #names) + 1]
  local v = verbs[(math.floor(counter / #names) % #verbs) + 1]
  local o = nouns[(math.floor(counter / (#names * #verbs)) % #nouns) + 1]
  local f = forms[(counter % #forms) + 1]
  local body = string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"memory_search","arguments":{"query":"%s","limit":10}}}',
    counter, string.format(f, n, v, o))
  local headers = {["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["mcp-protocol-version"] = "2025-06-18"}
  if os.getenv("SIGNET_TOKEN") then headers["Authorization"] = "Bearer " .. os.getenv("SIGNET_TOKEN") end
  return wrk.format("POST", "/mcp", headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"rps\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"errors\":%d,\"non2xx\":%d}\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
