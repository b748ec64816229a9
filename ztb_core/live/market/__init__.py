"""Market data for the loop: websocket and REST feeds built into bars, start-up history (backfill from
the store and the venue) and history download (`ztb data fetch`)."""
