"""The repository app's own constructs; the pipeline's are in autolabel/cdk (the construct library)."""
