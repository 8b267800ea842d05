"""A registry of bento versions with notebook lineage: server, storage and metadata backends, client.

``push`` and ``pull`` are the client entry points the CLI and the magics call.
"""

from bento_jupyter.registry.client import PullResult, PushResult, pull, push

__all__ = ["PullResult", "PushResult", "pull", "push"]
