"""The kit both functions (labeler and model manager) and the CDK app use.

AWS client configurations and the invocation deadline guard (``aws_config``,
``deadline``), the EventBridge publisher (``event_publisher``), the DynamoDB
codec and the results table's key layout (``dynamo_codec``, ``table_layout``),
configuration validators (``validation``), shared names (``names``), and the
one-per-execution-environment setup of a handler (``lambda_setup``).
"""
