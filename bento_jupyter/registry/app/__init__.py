"""The registry's HTTP application: the operation table (routes, scopes), its OpenAPI document, the server process."""
