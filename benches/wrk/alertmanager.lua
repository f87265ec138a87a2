-- wrk script: the intake bench's Alertmanager body over 100 rotating keys.
-- wrk -t1 -c16 -d5s -s benches/wrk/alertmanager.lua http://127.0.0.1:PORT
local i = 0
request = function()
  i = i + 1
  local k = i % 100
  local body = string.format('[{"labels":{"alertname":"bench","key":"bench-%d","severity":"warning","service":"bench"},"annotations":{"summary":"bench alert %d"}}]', k, i)
  return wrk.format("POST", "/api/v2/alerts", {["Content-Type"]="application/json"}, body)
end
