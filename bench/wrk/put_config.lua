-- PUT /config/{id} with a body that changes on every request (so every request writes),
-- over random ids of the seeded fleet, as an operator.
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local counter = 0
local token = os.getenv("BENCH_TOKEN")
request = function()
  counter = counter + 1
  local body = string.format(
    '{"device_type":"jetson_orin","port":9102,"reload_port":%s,"metrics":{"gpu_power":true,"cpu_temp":false},"bench":"%d-%d"}',
    "RELOAD_PORT", counter, math.random(0, 1e9))
  local id = math.random(0, 999)
  body = body:gsub("RELOAD_PORT", tostring(ports[id + 1]))
  return wrk.format("PUT", string.format("/config/bench-%04d", id),
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
