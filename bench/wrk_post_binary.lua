-- wrk script: POST a v2 request body read from $WRK_BODY_FILE; when $WRK_HEADER_LENGTH is set the body
-- uses the binary tensor data extension and that value is sent as Inference-Header-Content-Length.
-- Prints one JSON summary line, in the format of ../shared/bench/wrk_post.lua.
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local hl = os.getenv("WRK_HEADER_LENGTH")
if hl and hl ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = hl
  wrk.headers["Content-Type"] = "application/octet-stream"
else
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%.1f,"p99_us":%.1f,' ..
    '"mean_us":%.1f,"max_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
