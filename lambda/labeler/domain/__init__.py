"""What the labeler works with: the inbound S3 notification, the label result, the outbound event."""
