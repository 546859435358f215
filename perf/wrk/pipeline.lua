-- HTTP/1.1 pipelining for wrk: every write carries DEPTH copies of the request (default 16).
--
--   wrk -t1 -c256 -d10s -s perf/wrk/pipeline.lua http://127.0.0.1:5101/plaintext -- 16
--
-- wrk counts each response, so requests/s is right. Its latency percentiles are not
-- (it times the batch, not each request): the runner leaves them empty for pipelined runs.

local depth = 16

function init(args)
   depth = tonumber(args[1]) or depth
   local batch = {}
   for i = 1, depth do
      batch[i] = wrk.format()
   end
   request_batch = table.concat(batch)
end

function request()
   return request_batch
end
