"""The batching dispatcher: the pure batch policy, the dispatcher that carries it out, device placement."""
