"""Deploy: generate (and validate) artifacts for engines teams already run, from exported bundles."""
