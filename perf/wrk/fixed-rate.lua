-- Paced load for wrk (wrk2 is not in Debian): each connection waits MEAN_MS milliseconds
-- after every response before it sends its next request.
--
--   wrk -t1 -c128 -d10s -s perf/wrk/fixed-rate.lua http://127.0.0.1:5101/plaintext -- 2.7
--
-- Offered rate ~ connections * 1000 / (MEAN_MS + latency + timer slack). wrk's delay() takes
-- whole milliseconds, so a fractional mean is dithered: floor(mean) or floor(mean) + 1 at
-- random, in the right proportion. The runner calibrates MEAN_MS once against a reference
-- server and then offers every contender the same schedule; it reports the achieved rate.
-- wrk starts its latency clock when the request is written (after the delay), so the
-- percentiles are request-to-response times. They are not corrected for coordinated
-- omission, which matters little at half of the saturated rate.

local mean = 10

function init(args)
   mean = tonumber(args[1]) or mean
   math.randomseed(os.time())
end

function delay()
   local whole = math.floor(mean)
   if math.random() < mean - whole then
      return whole + 1
   end
   return whole
end
