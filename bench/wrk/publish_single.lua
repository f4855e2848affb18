-- wrk: POST /v1/events with one JSON event per request (closed loop, flat out).
-- Run from the repository root: wrk -t2 -c32 -d15s -s bench/wrk/publish_single.lua URL
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require("common")

local thread_id = 0
local n = 0
local headers = { ["Content-Type"] = "application/json" }

setup = common.setup
done = common.done

function init(args)
   thread_id = tonumber(wrk.thread:get("thread_id")) or 0
end

function request()
   n = n + 1
   return wrk.format("POST", "/v1/events", headers, common.event(thread_id, n))
end
