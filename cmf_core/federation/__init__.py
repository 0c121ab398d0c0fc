"""Federation: sites exchange metadata peer to peer, with no central coordinator.

* :mod:`~cmf_core.federation.bundle`: the bundle format (versioned JSON lines, gzip optional,
  header, checksum trailer);
* :mod:`~cmf_core.federation.export`: selectors (whole store, pipelines, since a seq or a time,
  provenance closure of an artifact) and bundles of them;
* :mod:`~cmf_core.federation.merge`: import as a transactional, idempotent set union that
  records true conflicts;
* :mod:`~cmf_core.federation.peer`: ``sync(peer_url, ...)`` with any ``cmf serve`` (incremental
  by version vectors, resumable, token-authenticated) and artifact fetch by digest.

See docs/federation.md.
"""
