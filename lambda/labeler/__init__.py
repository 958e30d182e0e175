"""autolabel labeler: labels S3 images with a Rekognition Custom Labels model.

Layout: ``handler`` (thin Lambda entry point) -> ``pipeline`` (batch logic) ->
adapters (``detector`` for Rekognition, ``store`` for DynamoDB, ``publisher``
for EventBridge). ``queries`` is the read side used by tests and operators.
"""
