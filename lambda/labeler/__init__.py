"""autolabel labeler: labels S3 images with a Rekognition Custom Labels model.

``handler`` (thin Lambda entry point) -> ``logic`` (``decisions``: pure;
``pipeline``: carries one SQS batch out) -> ``adapters`` (Rekognition detector,
results store and its item mapping) and the shared EventBridge publisher.
``domain`` holds what flows through: the inbound S3 notification, the label
result, the outbound event. ``queries`` is the public read side.
"""
