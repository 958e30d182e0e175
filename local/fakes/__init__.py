"""The fakes the local run, the soak, the benchmarks and the tests share: one place for all of them.

``fake_model`` (the emulated Custom Labels model), ``model_server`` (it, in its own
process, with the capacity cap), ``canned_models`` (scripted, canned, slow and
oversized answers), ``recorders`` (a clock, EventBridge and the retry queue that
record), ``model_lifecycle`` (the model's start/stop lifecycle and the event
source mappings, which moto lacks), ``faults`` (fault injection: wrapped
clients, botocore-level drops, kills). A fake that fills a labeler port
(``labeler.ports``) subclasses its protocol, so mypy checks it against the port.
"""
