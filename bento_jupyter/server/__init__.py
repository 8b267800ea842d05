"""The HTTP side: the ASGI app, the batching dispatcher and the threaded uvicorn runner."""
