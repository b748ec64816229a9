"""The decision loop and what it decides with: the runner, risk limits and breakers, sizing, the
policies (trained agent or a rule), `--minimal`, the live config and operator requests."""
