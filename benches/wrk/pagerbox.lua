-- wrk script: the intake bench's pagerbox body over 100 rotating keys.
-- wrk -t1 -c16 -d5s -s benches/wrk/pagerbox.lua http://127.0.0.1:PORT
local i = 0
request = function()
  i = i + 1
  local k = i % 100
  local body = string.format('{"summary":"bench alert %d","severity":"warning","dedup_key":"bench-%d","service":"bench"}', i, k)
  return wrk.format("POST", "/v1/alerts", {["Content-Type"]="application/json"}, body)
end
