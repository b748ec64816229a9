"""Console widgets: metric sparkline rows and panels, host bar, log and event views."""
