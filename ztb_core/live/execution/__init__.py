"""The money path: orders and our own ids, the SQLite journal, reconciliation with the venue, the
worst-case exposure model, the order manager (the only code that sends orders) and the paper venue."""
