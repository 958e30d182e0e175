"""autolabel: the operator command line of an autolabel deployment (``autolabel --help``).

Subcommands: ``detect`` (one DetectCustomLabels call), ``show`` / ``find`` /
``render`` (stored results), ``model status|start|stop`` and ``dlq redrive``.
They read the stack's CloudFormation outputs, or ``AUTOLABEL_*`` environment
variables for an emulator without CloudFormation (see ``autolabel.config``).
"""
