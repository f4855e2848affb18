-- wrk: POST /v1/events with a JSON array of 100 events per request (closed loop, flat out).
-- Run from the repository root: wrk -t2 -c16 -d15s -s bench/wrk/publish_batch100.lua URL
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require("common")

local BATCH = 100
local thread_id = 0
local n = 0
local headers = { ["Content-Type"] = "application/json" }

setup = common.setup
done = common.done

function init(args)
   thread_id = tonumber(wrk.thread:get("thread_id")) or 0
end

function request()
   local events = {}
   for i = 1, BATCH do
      n = n + 1
      events[i] = common.event(thread_id, n)
   end
   return wrk.format("POST", "/v1/events", headers, "[" .. table.concat(events, ",") .. "]")
end
