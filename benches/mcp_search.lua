-- wrk script: MCP `tools/call memory_search` (stateless Streamable HTTP,
-- one JSON-RPC request per POST /mcp) with the natural-language questions
-- of benches/questions.lua. Each wrk connection is one MCP client.
-- usage (from the repository root):
--   wrk -t2 -c16 -d12s -s benches/mcp_search.lua http://127.0.0.1:PORT
dofile("benches/questions.lua")
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"memory_search","arguments":{"query":"%s","limit":10}}}',
    counter, question(counter))
  local headers = {["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["mcp-protocol-version"] = "2025-06-18"}
  if os.getenv("SIGNET_TOKEN") then headers["Authorization"] = "Bearer " .. os.getenv("SIGNET_TOKEN") end
  return wrk.format("POST", "/mcp", headers, body)
end
done = function(summary, latency, requests)
  report(summary, latency)
end
