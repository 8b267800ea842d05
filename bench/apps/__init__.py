"""The baseline servers, each runnable on its own by uvicorn or `bentoml serve`."""
