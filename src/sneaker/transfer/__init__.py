"""The registry as a source: resolving references, and downloading blobs into the cache.

:mod:`.remote` resolves a reference to manifests; :mod:`.fetch` downloads blobs in
parallel, resumably and verified, into the content-addressed :mod:`.cache`.
"""
