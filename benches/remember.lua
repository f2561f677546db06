-- wrk script: POST /api/memory/remember with content unique per request
-- *and per run* (../shared/bench/remember.lua restarts its counter every
-- run, so a second run against the same daemon is all duplicates and
-- measures the dedupe path, not inserts).
-- usage: wrk -t2 -c32 -d10s -s benches/remember.lua http://127.0.0.1:PORT
local counter = 0
local words = {"alpha","bravo","cedar","delta","ember","fjord","grove","harbor","iris","juniper","kelp","lumen","maple","nectar","onyx","prairie"}
local thread_id = 0
local run = string.format("%x", os.time())
setup = function(thread)
  thread:set("tid", thread_id)
  thread:set("run", run)
  thread_id = thread_id + 1
end
request = function()
  counter = counter + 1
  local w1 = words[(counter % #words) + 1]
  local w2 = words[((counter * 7) % #words) + 1]
  local body = string.format('{"content":"bench note %s-%d-%d about %s near the %s tracking %x","project":"bench"}', run or "0", tid or 0, counter, w1, w2, counter * 2654435761 % 4294967296)
  local headers = {["Content-Type"] = "application/json"}
  if os.getenv("SIGNET_TOKEN") then headers["Authorization"] = "Bearer " .. os.getenv("SIGNET_TOKEN") end
  return wrk.format("POST", "/api/memory/remember", headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"rps\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"errors\":%d,\"non2xx\":%d}\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
