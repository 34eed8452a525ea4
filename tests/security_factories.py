"""Helpers for the security tests: the requests the sandbox API receives, counted at its HTTP server."""

from collections.abc import Iterator


def counted_api_calls(live_server) -> Iterator[list[str]]:
    """For an `api_calls` fixture: every request the live sandbox receives meanwhile, as its API path
    ("/v1/engines/list"). The live server's WSGI application is wrapped, so what is counted is what
    reached it over HTTP."""
    server = live_server.thread.httpd
    application = server.get_app()
    calls: list[str] = []

    def counting(environ, start_response):
        calls.append(environ["PATH_INFO"].removeprefix("/sandbox"))
        return application(environ, start_response)

    server.set_app(counting)
    try:
        yield calls
    finally:
        server.set_app(application)
