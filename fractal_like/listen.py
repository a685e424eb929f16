"""The server's listening socket, taken before anything else happens at start."""

from __future__ import annotations

import socket

# Connections that may wait while the server finishes starting (uvicorn's default).
BACKLOG = 2048


class PortUnavailableError(RuntimeError):
    """The address and port cannot be listened on; the message says what picks others."""


def listen_on(host: str, port: int) -> socket.socket:
    """A socket bound to host:port and listening, to hand to uvicorn.

    Taking it first means a busy port stops `serve` before it creates the database or
    the admin and before it prints a password, and no other process can take the port
    between this check and the server's start.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a port whose last connections are in TIME_WAIT can be reused at once.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        reason = (error.strerror or str(error)).lower()
        raise PortUnavailableError(
            f"cannot listen on {host}:{port}: {reason}. Pick another port with `--port` "
            "(or FRACTAL_LIKE_PORT), or another address with `--host` (or FRACTAL_LIKE_HOST)"
        ) from None
    return sock
