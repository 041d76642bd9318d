"""The image model every source and sink meets at. Pure logic, no I/O.

References, digests, media types, platforms and platform selection, descriptors,
manifests and indexes (raw bytes kept), image configs, and the records a source
hands to a sink (:mod:`.records`).
"""
