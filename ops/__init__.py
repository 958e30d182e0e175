"""``python -m ops``: the former operator commands, now an alias of the ``autolabel`` command line."""
