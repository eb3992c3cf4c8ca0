-- wrk script: replay pre-signed Twilio webhooks from a file, in the file's order.
--
--   wrk -t1 -c32 -d6s -s benchmarks/replay.lua http://127.0.0.1:PORT/sms/twilio -- FILE MODE PAUSE
--
-- Each line of FILE is "<X-Twilio-Signature>\t<form body>".  The requests are built once, in
-- init(); request() hands out the next.  MODE "once": running out of lines stops the thread
-- (the benchmark writes more than a run can send); "cycle": the lines go round again.
-- PAUSE: milliseconds each connection waits before each request (0: none), for a paced load.
-- done() prints one line of JSON for the benchmark to read: requests, seconds, latency
-- percentiles, errors, and how many answers said "Vote cast".

local lines = {}
local next_line = 0
local cycle = false
casts = 0 -- a global, for done() to read with thread:get
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  cycle = args[2] == "cycle"
  local pause = tonumber(args[3] or "0")
  if pause > 0 then
    delay = function() return pause end
  end
  for line in io.lines(args[1]) do
    local signature, body = line:match("^([^\t]*)\t(.*)$")
    lines[#lines + 1] = wrk.format("POST", nil, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
    }, body)
  end
end

function request()
  next_line = next_line + 1
  if next_line > #lines then
    if not cycle then
      wrk.thread:stop()
    end
    next_line = 1
  end
  return lines[next_line]
end

function response(status, headers, body)
  if body:find("Vote cast", 1, true) then
    casts = casts + 1
  end
end

function done(summary, latency, requests)
  local cast = 0
  for _, thread in ipairs(threads) do
    cast = cast + thread:get("casts")
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "p50": %.6f, "p99": %.6f, "status_errors": %d, '
      .. '"socket_errors": %d, "casts": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e6,
    latency:percentile(99) / 1e6, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout, cast
  ))
end
