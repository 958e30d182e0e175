"""The fakes the local run, the soak, the benchmarks and the tests share.

``fake_model`` (the emulated Custom Labels model), ``model_server`` (it, in its own
process, with the capacity cap), ``model_lifecycle`` (the model's start/stop
lifecycle and the event source mappings, which moto lacks), ``faults`` (fault
injection: wrapped clients, botocore-level drops, kills).
"""
