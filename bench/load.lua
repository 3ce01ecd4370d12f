-- wrk script for `make bench`'s load test (infra/local/src/bin/load.rs): POSTs the JSON event
-- in LOAD_BODY, stops each thread after LOAD_SHARE answers so a level is bounded in count as
-- well as in time (-d), and prints the result as one JSON line.

local body = os.getenv("LOAD_BODY") or '{"event_type":"load.test","data":{}}'
local share = tonumber(os.getenv("LOAD_SHARE") or "1000")

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local answered = 0

function response(status, headers, body)
  answered = answered + 1
  if answered >= share then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
