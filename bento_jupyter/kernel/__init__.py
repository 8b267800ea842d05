"""Kernel-side surfaces: the %bento magics, the serve-cell panel, session actions, live export, sidebar RPC."""
