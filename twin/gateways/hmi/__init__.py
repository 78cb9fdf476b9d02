"""The browser HMI: a web page showing a running twin live, served by a protocol client.

`twin hmi` (or `twin serve --hmi`) connects to the twin like any client, serves the page and
its assets (three.js vendored under static/vendor, so it works offline) and relays telemetry
to each browser over a WebSocket. Browser commands go to the twin under its control lease.
"""
