-- Shared by the publish scripts: per-thread numbering and a JSON summary line at the end.
-- Each wrk thread runs its own Lua state; setup() numbers the threads so that every
-- request body differs (subject, data.n and the thread's id).

local common = {}

local threads = {}
local next_id = 0

function common.setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

function common.event(thread_id, n)
   return string.format(
      '{"type":"bench.t%d.published","source":"bench","subject":"dev-%d",'
         .. '"data":{"n":%d,"switch":"on","level":42,"room":"kitchen"}}',
      thread_id, n % 100, n)
end

-- One line, prefixed so the harness can find it among wrk's own output.
function common.done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end

return common
