"""Local run of autolabel: embedded moto server, emulated model, ESM-like poller.

Also the building blocks the tests reuse: resources derived from the
synthesized template, the emulated Custom Labels model and fault injection.
"""
