"""A TCP forwarder in front of PostgreSQL that a test cuts: the database goes away and comes
back while the service runs."""

from __future__ import annotations

import contextlib
import socket
import threading


class Proxy:
    """TCP forwarder to PostgreSQL; while cut, it drops every connection, open or new."""

    def __init__(self, port: int) -> None:
        self.target, self.cut = port, False
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()  # a connection made as the cut starts is cut with the rest
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                if self.cut:
                    client.close()
                    upstream.close()
                    continue
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        # Shut down, not only close: a close does not wake the other direction's recv on
        # Linux, which then holds the socket open, and PostgreSQL, never told the client went,
        # keeps the transaction and its row locks (a cut at a write hung the next request).
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def set_cut(self, cut: bool) -> None:
        with self.lock:
            self.cut = cut
            if cut:
                for s in self.open:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                self.open.clear()

    def close(self) -> None:
        self.set_cut(True)
        self.server.close()
