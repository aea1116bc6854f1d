"""Oodaloo in Slack: Block Kit messages built from the runway domain's view models."""
