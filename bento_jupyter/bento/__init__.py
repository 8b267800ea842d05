"""What a bento is on disk (manifest, files, digest) and the local store that keeps them."""
