"""Export: a notebook on disk (or the live kernel) becomes one deployable bundle per served service."""
