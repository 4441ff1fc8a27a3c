"""Backtests of DCA bots on the live deal engine (issue 11 item 5).

Pure and CPU-bound: candles.py (1-minute OHLCV arrays), start_signals.py + verdicts.py (start
conditions over the whole series, vectorised), fill_model.py (the paper-like venue and the event
order within a candle), driver.py (replays candles through jobs.domain.dca.deal's start_deal and
step, skipping quiet candles), report.py (the figures), sweep.py (a parameter grid on both cores).
I/O lives in its own modules: sample_data.py (the bundled synthetic year), csv_source.py (Binance
kline CSV), bars_source.py (bars in Postgres), charts.py (PNG and self-contained HTML), and
runner.py / command.py (what the CLI and the worker call).
"""
