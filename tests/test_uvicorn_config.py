"""Our uvicorn protocol on a real server: a write that no other follows (an interim ``100 Continue``) still leaves
at once, and pipelined answers, each written as one head and body, arrive whole and in order."""

from __future__ import annotations

import socket

from bento_jupyter.server.running import services
from bento_jupyter.service.definition import ServiceDefinition


def echo(text: str) -> str:
    return text


def request(text: str, expect_100: bool = False) -> tuple[bytes, bytes]:
    """The head and body of ``POST /echo`` sending ``text``."""
    body = b'{"text": "%s"}' % text.encode()
    expect = b"Expect: 100-continue\r\n" if expect_100 else b""
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n"
    return head % (expect, len(body)), body


class Reader:
    """Whole responses, one after another, from one connection (a timeout or a closed connection fails the test)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffered = sock, b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        self.buffered += data

    def response(self) -> tuple[bytes, bytes]:
        while b"\r\n\r\n" not in self.buffered:
            self._more()
        head, _, self.buffered = self.buffered.partition(b"\r\n\r\n")
        lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        length = int(lengths[0]) if lengths else 0
        while len(self.buffered) < length:
            self._more()
        body, self.buffered = self.buffered[:length], self.buffered[length:]
        return head, body


def test_a_client_that_expects_100_continue_gets_it_before_sending_its_body_then_the_answer():
    service = services.serve(ServiceDefinition.from_functions("continue100", [echo]))
    try:
        with socket.create_connection(("127.0.0.1", service.server.port), timeout=10) as sock:
            head, body = request("hi", expect_100=True)
            sock.sendall(head)
            reader = Reader(sock)
            interim, _ = reader.response()
            assert interim.startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(body)
            head, answer = reader.response()
            assert head.startswith(b"HTTP/1.1 200") and answer == b"hi"
    finally:
        services.stop("continue100")


def test_pipelined_requests_get_whole_answers_in_order_on_one_connection():
    service = services.serve(ServiceDefinition.from_functions("pipelined", [echo]))
    try:
        with socket.create_connection(("127.0.0.1", service.server.port), timeout=10) as sock:
            texts = [f"text {i}" for i in range(8)]
            sock.sendall(b"".join(b"".join(request(text)) for text in texts))
            reader = Reader(sock)
            answers = [reader.response() for _ in texts]
            assert all(head.startswith(b"HTTP/1.1 200") for head, _ in answers)
            assert [body.decode() for _, body in answers] == texts
    finally:
        services.stop("pipelined")
