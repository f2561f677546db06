-- wrk script: session-start of new harness sessions (a fresh session key
-- each call, so every answer is a full inject: identity files, memories by
-- importance x recency, peers of the project).
-- usage (from the repository root):
--   wrk -t2 -c50 -d15s -s benches/hooks_start.lua http://127.0.0.1:PORT
dofile("benches/questions.lua")
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"harness":"claude-code","sessionKey":"start-%d-%d","project":"/work/repo-%d"}',
    tid or 0, counter, counter % 10)
  local headers = {["Content-Type"] = "application/json"}
  if os.getenv("SIGNET_TOKEN") then headers["Authorization"] = "Bearer " .. os.getenv("SIGNET_TOKEN") end
  return wrk.format("POST", "/api/hooks/session-start", headers, body)
end
done = function(summary, latency, requests)
  report(summary, latency)
end
