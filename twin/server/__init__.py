"""The twin behind ZeroMQ sockets: `twin serve` (command), the loop and modes (loop), request
handling (dispatch), control ownership and watchdog (control_lock), sockets (endpoints)."""
