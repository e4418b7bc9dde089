"""ssbsync: a Secure Scuttlebutt full node that also carries feeds where there is no network."""

__version__ = "0.1.0"
