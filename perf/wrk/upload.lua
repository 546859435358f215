-- POST /upload with a body of UPLOAD_BYTES bytes (default 1 MiB), built once.
local size = tonumber(os.getenv("UPLOAD_BYTES") or "1048576")
wrk.method = "POST"
wrk.path = "/upload"
wrk.body = string.rep("u", size)
wrk.headers["Content-Type"] = "application/octet-stream"
