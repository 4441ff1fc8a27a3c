"""DCA bots with 3Commas semantics, pure (no I/O): the configuration (config.py, with its entry
and exit parts in entries.py and exits.py, problems collected by problems.py), start-condition
specs (condition_specs.py) and the safety-order ladder, the 3Commas DCA calculator (ladder.py).
A deal's lifecycle is a pure state machine shared by the live engine and the backtest: deal.py
(start_deal, step), its record (deal_state.py), events (deal_events.py), intents
(deal_intents.py), the orders it wants (deal_plan.py), user actions (deal_actions.py), the price
band a backtest may skip (deal_band.py) and recovery against the venue (deal_reconcile.py)."""
