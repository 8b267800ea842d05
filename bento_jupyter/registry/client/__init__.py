"""The registry client: push, pull and admin calls over HTTP, the local blob cache, saved logins."""
