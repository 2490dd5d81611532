"""The HTTP wire shapes, written once for both sides: the runner (server) and the clients/backends.

`lean_runner`: lean-runner's routes, bodies and error statuses; `kimina`: Kimina's `/api/check`
and `/verify` shapes. No I/O here.
"""
