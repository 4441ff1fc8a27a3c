"""DCA bots with 3Commas semantics, pure (no I/O): the configuration (config.py, with its entry
and exit parts in entries.py and exits.py, problems collected by problems.py), start-condition
specs (condition_specs.py) and the safety-order ladder, the 3Commas DCA calculator (ladder.py)."""
