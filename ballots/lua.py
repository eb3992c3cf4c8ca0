"""Lua pieces shared by the atomic scripts."""

#: Compares two strings in time that depends only on their lengths.
CONSTANT_TIME_EQUAL = """
local function ct_equal(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i)))
  end
  return diff == 0
end
"""
