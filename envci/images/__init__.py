"""Container images built offline: deterministic layers, `docker save` archives, a reader, containerd import.

No machine envci runs on can pull from a registry, so every image the local cluster's real node runs is
built here from files on disk (Debian packages, a static C program, binaries built from Go modules) and
imported into containerd from an archive. The modules split the work:

- `layer`: one filesystem layer as a byte-for-byte reproducible tar.
- `archive`: `docker save` archives of one or more images that share layers.
- `reader`: validate an archive (docker-save or OCI image layout) and list its images.
- `containerd`: import archives into a containerd with `ctr`, only what is missing.
- `definitions`: the project's images as data; `build`: the offline builder and its cache.
- `slim`: trim envci's installed dependencies to what envci loads, keeping their metadata true.
"""
