"""A registry of bento versions with notebook lineage: the HTTP app, metadata database, blob storage, client."""
