-- wrk script: the prompt hook of 50 harness sessions in a loop. Each wrk
-- connection's requests go to a rotating session key of its thread (25 per
-- thread at -t2 -c50), each prompt a natural-language question of
-- benches/questions.lua, PROMPTS distinct ones in rotation (default 400).
-- usage (from the repository root):
--   wrk -t2 -c50 -d15s -s benches/hooks_prompt.lua http://127.0.0.1:PORT
dofile("benches/questions.lua")
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local prompts = tonumber(os.getenv("PROMPTS") or "400")
request = function()
  counter = counter + 1
  local body = string.format(
    '{"harness":"claude-code","sessionKey":"bench-%d-%d","project":"/work/repo","userPrompt":"%s"}',
    tid or 0, counter % 25, question((counter * 7 + (tid or 0) * 131) % prompts))
  local headers = {["Content-Type"] = "application/json"}
  if os.getenv("SIGNET_TOKEN") then headers["Authorization"] = "Bearer " .. os.getenv("SIGNET_TOKEN") end
  return wrk.format("POST", "/api/hooks/user-prompt-submit", headers, body)
end
done = function(summary, latency, requests)
  report(summary, latency)
end
