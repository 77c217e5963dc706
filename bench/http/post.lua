-- wrk script for bench/http-node.mjs's echo case: a small JSON POST.
wrk.method = "POST"
wrk.body = '{"hello":"world","n":[1,2,3],"ok":true}'
wrk.headers["Content-Type"] = "application/json"
