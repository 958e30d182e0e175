"""CDK app of autolabel: settings, stack, one construct per file, cdk-nag rules."""
