"""Layer blobs: bounded decompression, diff IDs, applying them to a directory, and gzip.

:mod:`.apply` opens and applies layer tars; :mod:`.recompress` gzips the plain
layers of old ``docker save`` archives deterministically.
"""
