"""Oodaloo's Jinja2 templates: the Slack messages' words (`slack/`), the email digest and its link
pages (`email/`). Installed from the wheel, this folder is the package `oodaloo_templates`
(bot/packaged.py finds it either way)."""
