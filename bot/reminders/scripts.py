"""The atomic steps of a reminder job, each one Lua script on the job's hash slot."""

from __future__ import annotations

from ballots import keys
from bot.reminders.common import CHANNELS

# --- the Lua steps --------------------------------------------------------------
#
# Every script takes the same KEYS (see job_keys): the job hash, claims,
# workers, doubt, then list/retry/progress for sms and for telegram.

#: How long a finished or cancelled job's keys stay in Redis.
JOB_RETENTION = 30 * 24 * 3600

_COMMON = (
    f"""
local JOB_RETENTION_MS = {JOB_RETENTION * 1000}
"""
    + """
local job, claims, workers, doubt = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local CHANNELS = {'sms', 'telegram'}
local function base(ch) if ch == 'sms' then return 5 end return 8 end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A finished or cancelled job is kept for JOB_RETENTION (for --status), then
-- Redis drops it; the audit trail keeps its outcome for good.
local function retire()
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], JOB_RETENTION_MS) end
end
local function set_progress(ch, idx, value)
  redis.call('BITFIELD', KEYS[base(ch) + 2], 'SET', 'u4', '#' .. idx, value)
end
local function finish_if_done()
  if redis.call('HGET', job, 'status') ~= 'running' then return 'no' end
  if redis.call('HLEN', claims) > 0 then return 'no' end
  for _, ch in ipairs(CHANNELS) do
    if redis.call('LLEN', KEYS[base(ch) + 1]) > 0 then return 'no' end
    local n = tonumber(redis.call('HGET', job, 'next:' .. ch) or '0')
    if n < tonumber(redis.call('HGET', job, 'total:' .. ch) or '0') then return 'no' end
  end
  redis.call('HSET', job, 'status', 'finished', 'finished_at', math.floor(now_ms() / 1000))
  retire()
  return 'finished'
end
"""
)

# ARGV: channel, worker.  -> {'ok', index, supporter id} | {'empty'} | {status}
CLAIM = (
    _COMMON
    + """
local ch, worker = ARGV[1], ARGV[2]
local status = redis.call('HGET', job, 'status')
if status ~= 'running' then return {status or 'missing'} end
local idx = redis.call('LPOP', KEYS[base(ch) + 1])
if not idx then
  local n = tonumber(redis.call('HGET', job, 'next:' .. ch) or '0')
  if n >= tonumber(redis.call('HGET', job, 'total:' .. ch) or '0') then return {'empty'} end
  redis.call('HSET', job, 'next:' .. ch, n + 1)
  idx = n
end
idx = tonumber(idx)
local sid = redis.call('LINDEX', KEYS[base(ch)], idx)
redis.call('HSET', claims, ch .. ':' .. idx, worker .. ':c')
set_progress(ch, idx, 1)
return {'ok', idx, sid}
"""
)

# ARGV: channel, index, worker.  -> 'ok' | 'lost' | the job's status (claim handed back)
BEGIN = (
    _COMMON
    + """
local ch, idx, worker = ARGV[1], ARGV[2], ARGV[3]
local field = ch .. ':' .. idx
if redis.call('HGET', claims, field) ~= worker .. ':c' then return 'lost' end
local status = redis.call('HGET', job, 'status')
if status ~= 'running' then
  redis.call('HDEL', claims, field)
  redis.call('LPUSH', KEYS[base(ch) + 1], idx)
  set_progress(ch, idx, 0)
  return status
end
redis.call('HSET', claims, field, worker .. ':s')
set_progress(ch, idx, 2)
return 'ok'
"""
)

# ARGV: channel, index, worker, progress value, outcome name.  -> 'finished' | 'no' | 'lost'
FINISH = (
    _COMMON
    + """
local ch, idx, worker = ARGV[1], ARGV[2], ARGV[3]
local field = ch .. ':' .. idx
local owner = redis.call('HGET', claims, field)
if owner == worker .. ':c' or owner == worker .. ':s' then
  redis.call('HDEL', claims, field)
else
  local current = redis.call('BITFIELD', KEYS[base(ch) + 2], 'GET', 'u4', '#' .. idx)[1]
  if current ~= 8 then return 'lost' end
  -- Marked in doubt while this worker was slow but alive: now we know.
  redis.call('HINCRBY', job, 'n:in_doubt:' .. ch, -1)
  redis.call('LREM', doubt, 1, field)
end
set_progress(ch, idx, tonumber(ARGV[4]))
redis.call('HINCRBY', job, 'n:' .. ARGV[5] .. ':' .. ch, 1)
if ARGV[5] == 'in_doubt' then redis.call('RPUSH', doubt, field) end
return finish_if_done()
"""
)

# ARGV: none.  Claims of workers whose heartbeat ran out: unbegun ones go back
# to the queue, begun ones are marked in doubt.  -> {requeued, in doubt, 'finished'|'no'}
RECOVER = (
    _COMMON
    + """
local now = now_ms()
local held = redis.call('HGETALL', claims)
local requeued, doubted = 0, 0
for i = 1, #held, 2 do
  local field, value = held[i], held[i + 1]
  local worker, phase = string.sub(value, 1, -3), string.sub(value, -1)
  local expiry = redis.call('ZSCORE', workers, worker)
  if (not expiry) or tonumber(expiry) < now then
    local sep = string.find(field, ':', 1, true)
    local ch, idx = string.sub(field, 1, sep - 1), string.sub(field, sep + 1)
    redis.call('HDEL', claims, field)
    if phase == 'c' then
      redis.call('LPUSH', KEYS[base(ch) + 1], idx)
      set_progress(ch, idx, 0)
      requeued = requeued + 1
    else
      set_progress(ch, idx, 8)
      redis.call('HINCRBY', job, 'n:in_doubt:' .. ch, 1)
      redis.call('RPUSH', doubt, field)
      doubted = doubted + 1
    end
  end
end
redis.call('ZREMRANGEBYSCORE', workers, '-inf', '(' .. now)
return {requeued, doubted, finish_if_done()}
"""
)

# ARGV: worker, ttl (ms), '1' to join or '0' to leave.
BEAT = (
    _COMMON
    + """
if ARGV[3] == '0' then redis.call('ZREM', workers, ARGV[1]) return 0 end
redis.call('ZADD', workers, now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)

# ARGV: new status, allowed current statuses...  -> the status before
SET_STATUS = (
    _COMMON
    + """
local status = redis.call('HGET', job, 'status')
if not status then return 'missing' end
for i = 2, #ARGV do
  if status == ARGV[i] then
    redis.call('HSET', job, 'status', ARGV[1])
    if ARGV[1] == 'running' then finish_if_done() end
    if ARGV[1] == 'cancelled' then retire() end
    return status
  end
end
return status
"""
)

# ARGV: none.  In-doubt messages go back to the queue (the organiser chose
# at-least-once for them); a finished job runs again.  -> how many
RESEND_DOUBT = (
    _COMMON
    + """
local status = redis.call('HGET', job, 'status')
if status ~= 'running' and status ~= 'paused' and status ~= 'finished' then return -1 end
local n = 0
while true do
  local field = redis.call('LPOP', doubt)
  if not field then break end
  local sep = string.find(field, ':', 1, true)
  local ch, idx = string.sub(field, 1, sep - 1), string.sub(field, sep + 1)
  redis.call('LPUSH', KEYS[base(ch) + 1], idx)
  set_progress(ch, idx, 0)
  redis.call('HINCRBY', job, 'n:in_doubt:' .. ch, -1)
  n = n + 1
end
if n > 0 and status == 'finished' then
  redis.call('HSET', job, 'status', 'running')
  for i = 1, #KEYS do redis.call('PERSIST', KEYS[i]) end
end
return n
"""
)


def job_keys(job_id: str) -> list[str]:
    out = [
        keys.reminder(job_id),
        keys.reminder_claims(job_id),
        keys.reminder_workers(job_id),
        keys.reminder_doubt(job_id),
    ]
    for ch in CHANNELS:
        out += [
            keys.reminder_recipients(job_id, ch),
            keys.reminder_retry(job_id, ch),
            keys.reminder_progress(job_id, ch),
        ]
    return out
