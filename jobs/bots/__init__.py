"""DCA bots in the worker: their commands (manage.py), the checks a configuration must pass
against the market and the account (validate.py), and accepting their webhook signals
(signals.py). The deal engine that runs a bot's deals builds on the same storage."""
