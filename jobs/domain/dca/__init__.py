"""DCA bots with 3Commas semantics, pure: configuration (config.py), start-condition specs
(condition_specs.py), the safety-order ladder (ladder.py)."""
