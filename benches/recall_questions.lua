-- wrk script: POST /api/memory/recall with the natural-language questions
-- of benches/questions.lua.
-- usage (from the repository root):
--   wrk -t2 -c32 -d12s -s benches/recall_questions.lua http://127.0.0.1:PORT
dofile("benches/questions.lua")
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"query":"%s","limit":10}', question(counter))
  local headers = {["Content-Type"] = "application/json"}
  if os.getenv("SIGNET_TOKEN") then headers["Authorization"] = "Bearer " .. os.getenv("SIGNET_TOKEN") end
  return wrk.format("POST", "/api/memory/recall", headers, body)
end
done = function(summary, latency, requests)
  report(summary, latency)
end
