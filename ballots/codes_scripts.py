"""The Lua scripts behind one-time codes: each check or request is one atomic step.

Every script works on one voter's hash (one hash slot), and compares in
constant time inside Redis.  :mod:`ballots.codes` calls them.
"""

from __future__ import annotations

from ballots.lua import CONSTANT_TIME_EQUAL

VERIFY = (
    CONSTANT_TIME_EQUAL
    + """
-- KEYS[1] voter hash, KEYS[2] the shard's turnout (counts voters identified at least once)
-- ARGV: field ('code'|'otp'), presented hash, now, max tries, max fails, grant hash,
--       grant expiry, delivery (the platform's message id, or ''), asker tag,
--       the SMS number it came from (or ''): the voter's own phone on the roll is never
--       refused for their failures; the Telegram user it came from (or ''), linked to
--       the voter once a code has proved who they are
local v = KEYS[1]
if redis.call('EXISTS', v) == 0 then return {'unknown', 0} end
local function grant()
  -- grant_by: how the voter proved who they are (a posted code or a texted one), counted
  -- at the cast for the pilots' report; the first identification is counted once.
  redis.call('HSET', v, 'grant', ARGV[6], 'grant_exp', ARGV[7], 'grant_by', ARGV[1])
  if redis.call('HSETNX', v, 'identified', '1') == 1 then
    redis.call('HINCRBY', KEYS[2], 'identified', 1)
  end
  if ARGV[11] ~= '' then redis.call('HSET', v, 'telegram_id', ARGV[11]) end
end
if redis.call('HGET', v, 'voted') then return {'voted', 0} end
local now = tonumber(ARGV[3])
if ARGV[1] == 'code' then
  -- The posted voting code: no lock on the voter ever stands in its way (guesses are
  -- limited per address and election-wide, before the code is looked up).
  local stored = redis.call('HGET', v, 'code')
  if stored and ct_equal(stored, ARGV[2]) then
    grant()
    return {'ok', 0}
  end
  return {'nocode', 0}
end
-- A code texted to the voter's phone: each asking chat (the tag) has its own, so
-- nobody else's asking or guessing can spend the voter's.
local t = ARGV[9]
local function clear()
  redis.call('HDEL', v, 'otp:' .. t, 'otp_exp:' .. t, 'otp_tries:' .. t, 'otp_sealed:' .. t)
end
local fails = tonumber(redis.call('HGET', v, 'fails') or '0')
local own = ARGV[10] ~= '' and redis.call('HGET', v, 'phone') == ARGV[10]
if not own and fails >= tonumber(ARGV[5]) then return {'locked', 0} end
local used = ARGV[2] .. '|' .. ARGV[8]
local stored = redis.call('HGET', v, 'otp:' .. t)
if not stored then
  -- The same delivery again (its first handling took the code, then failed before the
  -- conversation was saved): the same answer.  Any other use of a spent code fails.
  if ARGV[8] ~= '' and redis.call('HGET', v, 'otp_used:' .. t) == used
     and now < tonumber(redis.call('HGET', v, 'grant_exp') or '0') then
    grant()
    return {'ok', 0}
  end
  return {'nocode', 0}
end
if now >= tonumber(redis.call('HGET', v, 'otp_exp:' .. t) or '0') then
  clear()
  return {'expired', 0}
end
if ct_equal(stored, ARGV[2]) then
  clear()
  redis.call('HSET', v, 'otp_used:' .. t, used)
  grant()
  return {'ok', 0}
end
redis.call('HINCRBY', v, 'fails', 1)
local max_tries = tonumber(ARGV[4])
local tries = redis.call('HINCRBY', v, 'otp_tries:' .. t, 1)
if tries >= max_tries then
  clear()
  return {'spent', 0}
end
return {'wrong', max_tries - tries}
"""
)

REQUEST_OTP = """
-- KEYS[1] voter hash
-- ARGV: now, ttl, cooldown, max fails, max sends, send window, delivery (or ''),
--       asker tag, the SMS number it came from (or ''), new code's hash, new code sealed
-- -> {status, wait, sealed code or '', the phone on the roll}: 'sent' (a new code),
--    'resend' (the sealed code again) or a refusal with the seconds to wait
local v = KEYS[1]
if redis.call('EXISTS', v) == 0 then return {'unknown', 0, '', ''} end
local phone = redis.call('HGET', v, 'phone') or ''
local function answer(status, wait, sealed) return {status, wait, sealed or '', phone} end
if redis.call('HGET', v, 'voted') then return answer('voted', 0) end
local now = tonumber(ARGV[1])
local t = ARGV[8]
-- The voter's own phone on the roll is never refused for their failures, nor for the
-- codes others asked for.
local own = ARGV[9] ~= '' and phone == ARGV[9]
local fails = tonumber(redis.call('HGET', v, 'fails') or '0')
if not own and fails >= tonumber(ARGV[4]) then return answer('locked', 0) end
local valid = redis.call('HGET', v, 'otp:' .. t)
  and now < tonumber(redis.call('HGET', v, 'otp_exp:' .. t) or '0')
if valid and ARGV[7] ~= '' and redis.call('HGET', v, 'otp_for:' .. t) == ARGV[7] then
  -- The same delivery again, whose first answer may never have gone out: the same code.
  return answer('resend', 0, redis.call('HGET', v, 'otp_sealed:' .. t))
end
local last = tonumber(redis.call('HGET', v, 'otp_sent:' .. t) or '-1e12')
local cooldown = tonumber(ARGV[3])
if now < last + cooldown then
  -- The voter's own phone asking again gets the code again (its answer costs one SMS
  -- either way): a reply lost to a crash or a failover must not leave them waiting.
  if own and valid then return answer('resend', 0, redis.call('HGET', v, 'otp_sealed:' .. t)) end
  return answer('cooldown', last + cooldown - now)
end
if not own then
  -- Codes asked for from other chats are limited per rolling window, so nobody can
  -- text a voter's phone without end; the voter's own phone is never refused.
  local window = tonumber(ARGV[6])
  local since = tonumber(redis.call('HGET', v, 'otp_window') or '-1e12')
  local sends = tonumber(redis.call('HGET', v, 'otp_sends') or '0')
  if now - since >= window then since = now; sends = 0 end
  if sends >= tonumber(ARGV[5]) then return answer('too_many', since + window - now) end
  redis.call('HSET', v, 'otp_sends', sends + 1, 'otp_window', since)
end
redis.call('HSET', v, 'otp_sent:' .. t, now, 'otp_for:' .. t, ARGV[7])
if valid then
  -- A code still valid is sent again, never replaced: asking cannot cancel it.
  return answer('resend', 0, redis.call('HGET', v, 'otp_sealed:' .. t))
end
redis.call('HSET', v, 'otp:' .. t, ARGV[10], 'otp_sealed:' .. t, ARGV[11],
           'otp_exp:' .. t, now + tonumber(ARGV[2]), 'otp_tries:' .. t, 0)
return answer('sent', 0)
"""

ADDRESS_FAIL = """
-- KEYS[1] address failure counter; ARGV: window seconds
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
