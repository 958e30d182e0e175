"""The labeler's AWS adapters: Rekognition detector, results table store, clients."""
