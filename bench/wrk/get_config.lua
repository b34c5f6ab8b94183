-- GET /config/{id} over random ids of the seeded fleet (bench-0000 .. bench-0999).
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", string.format("/config/bench-%04d", math.random(0, 999)))
end
